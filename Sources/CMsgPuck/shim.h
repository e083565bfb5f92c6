/* msgpuck from Debian's libmsgpuck-dev (a static libmsgpuck.a, no pkg-config file). */
#include <msgpuck.h>
