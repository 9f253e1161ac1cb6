/* moat_reap.c: moat-reap, the reaper between the worker and an unsandboxed exec
 * task (worker/wrk_reap.h). A program of its own, on libc alone, so that it
 * starts in well under a millisecond; the worker runs it as
 * `moat-reap --reap -- CMD ARG...`. */
#include "worker/wrk_reap.h"

int main(int argc, char **argv) { return wrk_reap_main(argc - 1, argv + 1); }
