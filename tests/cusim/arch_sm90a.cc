/* arch_sm90a.cc: linked into a program, makes the emulated device sm_90a
 * (compute capability 9.0, TMA, wgmma) unless CUSIM_ARCH says otherwise: the
 * strong definition of the weak default in cusim_runtime.cc. */
extern "C" const char *const cusim_arch_default = "sm_90a";
