/* libev from Debian's libev-dev; the C core includes <ev.h> directly, this module declares the dependency. */
#include <ev.h>
