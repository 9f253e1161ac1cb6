# kernels/kernels.mk: placeholder until the kernels module lands; defines KRN_LIB and KRN_LDLIBS.
KRN_LIB :=
KRN_LDLIBS :=
