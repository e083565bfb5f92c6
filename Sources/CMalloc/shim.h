/* glibc's mallopt(), which Swift's Glibc module leaves out: the file gateway tunes when large allocations are mapped. */
#include <malloc.h>
