/* Intel ISA-L from Debian's libisal-dev: Reed-Solomon over GF(2^8) for the file store's
   parity, and the CRC-32 that zlib computes (crc32_gzip_refl), an order of magnitude faster. */
#include <isa-l/erasure_code.h>
#include <isa-l/crc.h>
