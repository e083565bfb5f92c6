/* Glibc's Swift module leaves out <sys/epoll.h>; the load generator's poller needs it. */
#include <sys/epoll.h>
