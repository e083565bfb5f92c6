/* zlib from Debian's zlib1g-dev: crc32() checks every journal record and snapshot. */
#include <zlib.h>
