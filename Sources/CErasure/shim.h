/* Intel ISA-L from Debian's libisal-dev: Reed-Solomon over GF(2^8) for the file store's parity. */
#include <isa-l/erasure_code.h>
