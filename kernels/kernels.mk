# kernels/kernels.mk: the kernels module (krn.h op API; ref, cpu and cuda backends),
# its tests and its benchmark. Included by the root Makefile, which provides
# BUILD, BIN, CFLAGS, HAVE_CUDA, NVCC, CUDA_HOME and SHARED_LIB.
#   KRN_LIB      static library: core + ref + cpu, and cuda objects or the no-CUDA stub
#   KRN_LDLIBS   what a program linking KRN_LIB needs (cuBLAS is never in it: reference only)
#   CHECK_BINS   += kernel tests (GPU tests skip with a reason when no GPU is present)
#   BENCH_BINS   += $(BIN)/bench-kernels
# `make krn-dev` compiles the numbered CUDA kernel versions in kernels/dev/ (also
# a prerequisite of the CUDA test, so `make check` compiles every .cu file).

KRN_LIB := $(BUILD)/libmoatkrn.a
KRN_C_SRC := $(wildcard kernels/*.c kernels/ref/*.c kernels/cpu/*.c)
KRN_C_OBJ := $(KRN_C_SRC:%.c=$(BUILD)/%.o)
KRN_OBJ := $(KRN_C_OBJ)
KRN_LDLIBS := -lopenblas -lm -lpthread

# The fused CPU attention is compute-bound vector code: let GCC unroll it and
# contract a*b+c into FMA (-std=c11 turns contraction off by default).
$(BUILD)/kernels/cpu/cpu_attn.o $(BUILD)/kernels/cpu/cpu_gelu.o: CFLAGS += -O3 -ffp-contract=fast

# nvcc: sm_80 (A100), sm_90 (H100/H200 generic) and sm_90a (Hopper wgmma/TMA,
# guarded in the source by __CUDA_ARCH_FEAT_SM90_ALL), plus compute_90 PTX.
KRN_NVCC_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
                 -gencode arch=compute_90a,code=sm_90a -gencode arch=compute_90,code=compute_90
KRN_NVCC_FLAGS ?= -std=c++17 -O3 -I. -lineinfo -Xcompiler -Wall,-Wextra \
                  -Wno-deprecated-gpu-targets $(KRN_NVCC_ARCH)
# gemm_kernel7 (wgmma/TMA) lives in a unit built for sm_90a alone, so that on a
# cc 9.0 device the runtime cannot load generic sm_90 code in its place.
$(BUILD)/kernels/cuda/cuda_gemm_sm90a.o: KRN_NVCC_ARCH := -gencode arch=compute_90a,code=sm_90a
KRN_DEV_SRC := $(wildcard kernels/dev/*.cu)
KRN_DEV_BINS :=

ifeq ($(HAVE_CUDA),1)
  KRN_CU_SRC := $(wildcard kernels/cuda/*.cu)
  KRN_OBJ += $(KRN_CU_SRC:%.cu=$(BUILD)/%.o)
  KRN_LDLIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart -lstdc++ -ldl -lrt
  KRN_CUBLAS := -L$(CUDA_HOME)/lib64 -lcublas
  KRN_TEST_CFLAGS := -DKRN_TEST_CUBLAS -I$(CUDA_HOME)/include
  # bench_cublas.c dlopens libcublas.so.<major of this nvcc>, else from CUDA_HOME
  KRN_CUDA_MAJOR := $(shell $(NVCC) --version 2>/dev/null | sed -n 's/.*release \([0-9]*\)\..*/\1/p')
  $(BUILD)/bench/kernels/bench_cublas.o: CFLAGS += -DKRN_CUBLAS_MAJOR='"$(KRN_CUDA_MAJOR)"' \
                                                   -DKRN_CUDA_LIBDIR='"$(CUDA_HOME)/lib64"' 
  KRN_DEV_BINS := $(KRN_DEV_SRC:kernels/dev/%.cu=$(BUILD)/kernels/dev/%)
else
  KRN_OBJ += $(BUILD)/kernels/cuda/cuda_stub.o
  KRN_CUBLAS :=
  KRN_TEST_CFLAGS :=
endif

$(BUILD)/kernels/%.o: kernels/%.cu kernels/krn.h kernels/krn_impl.h $(wildcard kernels/cuda/*.cuh)
	@mkdir -p $(@D)
	$(NVCC) $(KRN_NVCC_FLAGS) -c $< -o $@

# rpath: cuBLAS is found where it was linked, also where CUDA's lib64 is not in ld.so.conf
$(BUILD)/kernels/dev/%: kernels/dev/%.cu $(wildcard kernels/dev/*.cuh)
	@mkdir -p $(@D)
	$(NVCC) $(KRN_NVCC_FLAGS) -o $@ $< -Xlinker -rpath,$(CUDA_HOME)/lib64 -lcublas

.PHONY: krn-dev krn-check
krn-dev: $(KRN_DEV_BINS)

# The library's contents depend on HAVE_CUDA: a stamp per setting makes a
# switch between CUDA=0 and CUDA=1 in one build tree rebuild the archive.
KRN_STAMP := $(BUILD)/kernels/have_cuda_$(HAVE_CUDA).stamp
$(KRN_STAMP):
	@mkdir -p $(@D)
	rm -f $(BUILD)/kernels/have_cuda_*.stamp
	touch $@

$(KRN_LIB): $(KRN_OBJ) $(KRN_STAMP)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $(KRN_OBJ)

# ---- tests: one cmocka binary per concern ----
KRN_TESTS := $(BUILD)/tests/kernels/test_krn_api $(BUILD)/tests/kernels/test_krn_cpu \
             $(BUILD)/tests/kernels/test_krn_cuda
CHECK_BINS += $(KRN_TESTS)

$(BUILD)/tests/kernels/%.o $(BUILD)/tests/unit/test_bench_cublas.o: CFLAGS += $(KRN_TEST_CFLAGS)
$(BUILD)/tests/unit/test_bench_cublas.o: $(KRN_STAMP)
# objects compiled with -DKRN_TEST_CUBLAS or without: rebuild on a CUDA switch
$(BUILD)/tests/kernels/test_krn_cuda.o $(BUILD)/bench/kernels/bench_kernels.o: $(KRN_STAMP)

$(BUILD)/tests/kernels/test_krn_api $(BUILD)/tests/kernels/test_krn_cpu: \
  $(BUILD)/tests/kernels/%: $(BUILD)/tests/kernels/%.o $(KRN_LIB) $(SHARED_LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(KRN_LDLIBS) -lcmocka

$(BUILD)/tests/kernels/test_krn_cuda: $(BUILD)/tests/kernels/test_krn_cuda.o $(KRN_LIB) \
  $(SHARED_LIB) | $(KRN_DEV_BINS)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o %.a,$^) $(KRN_CUBLAS) $(KRN_LDLIBS) -lcmocka

krn-check: $(KRN_TESTS)
	@set -e; for t in $(KRN_TESTS); do echo "== $$t"; $$t; done

# ---- benchmark ----
# KRN_BENCH_REF_OBJ: cuBLAS as the GEMM reference of bench rows (a no-op without
# CUDA; cuBLAS is dlopen'ed, not linked), in bench-kernels and the worker (bench task).
KRN_BENCH_REF_OBJ := $(BUILD)/bench/kernels/bench_cublas.o
BENCH_BINS += $(BIN)/bench-kernels
$(BUILD)/bench/kernels/%.o: CFLAGS += $(KRN_TEST_CFLAGS)
$(BUILD)/bench/kernels/bench_cublas.o: $(KRN_STAMP)
$(BIN)/bench-kernels: $(BUILD)/bench/kernels/bench_kernels.o $(KRN_BENCH_REF_OBJ) $(KRN_LIB) $(SHARED_LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(KRN_LDLIBS)
