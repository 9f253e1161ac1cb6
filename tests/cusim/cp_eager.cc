/* cp_eager.cc: linked into a program, makes cp.async land at issue instead of
 * at the issuing thread's wait_group (unless CUSIM_CP_ASYNC says otherwise):
 * the other extreme of the copy's timing, which exposes a stage overwritten
 * while other threads still read it (a missing __syncthreads before reuse).
 * The strong definition of the weak default in cusim_runtime.cc. */
extern "C" const char *const cusim_cp_async_default = "eager";
