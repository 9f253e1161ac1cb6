# tests/cusim/cusim.mk: the cuda backend on the CPU emulator (tests/cusim/cusim.h),
# so that every hand-written kernel runs in `make check` on machines without a
# GPU. Included by the root Makefile after its unit tests (BUILD, CFLAGS,
# SHARED_LIB, KRN_C_OBJ, DEP_LIBS, CTL_LIBOBJ, WRK_LIBOBJ, KRN_BENCH_REF_OBJ).
#   CUSIM_LIB    the kernels library with the emulated cuda backend in place of
#                the nvcc objects (or of the no-CUDA stub); needs g++ and python3, not nvcc
#   CHECK_BINS   += test_cusim and _sm90a (the emulator's own semantics),
#                   test_krn_cuda_sim and _sim90a (tests/kernels/test_krn_cuda.c on an
#                   emulated sm_80 device, cp.async landing at the wait, and an sm_90a
#                   one, landing at issue), test_krn_api_sim,
#                   and $(BUILD)/tests/sim/test_<x> for each unit test with a GPU
#                   part (CUSIM_UNIT), linked against CUSIM_LIB: their cuda cases run
#                   (the worker built without NCCL: the emulator has none)
# Emulated sources: kernels/cuda/*.cu and *.cuh after tests/cusim/cusim_pp.py,
# under $(BUILD)/cusim/src/ (the .cuh copies are found first on the include path).

CUSIM_BUILD    := $(BUILD)/cusim
CUSIM_CU       := $(wildcard kernels/cuda/*.cu)
CUSIM_PP       := $(addprefix $(CUSIM_BUILD)/src/,$(CUSIM_CU) $(wildcard kernels/cuda/*.cuh))
CUSIM_CORE_OBJ := $(addprefix $(CUSIM_BUILD)/,cusim_sched.o cusim_sm80.o cusim_sm90a.o \
                  cusim_runtime.o)
CUSIM_OBJ      := $(CUSIM_CU:kernels/cuda/%.cu=$(CUSIM_BUILD)/%.o) $(CUSIM_CORE_OBJ)
CUSIM_LIB      := $(BUILD)/libmoatkrn-cusim.a
CUSIM_HDRS     := tests/cusim/cusim.h tests/cusim/cusim_impl.h $(wildcard tests/cusim/include/*.h)
# -ftrivial-auto-var-init=pattern: a kernel's uninitialised locals are garbage, as
# registers are, not the zeros of a fresh fiber stack
CUSIM_CXXFLAGS := -std=c++17 -O2 -g -fno-strict-aliasing -ftrivial-auto-var-init=pattern \
                  -MMD -MP -Wall -Wextra -Werror \
                  -Wno-unknown-pragmas -Wno-unused-function -Wno-psabi \
                  -I$(CUSIM_BUILD)/src -Itests/cusim/include -I.
CUSIM_UNIT     := test_bert test_stage test_infer
CUSIM_TESTS    := $(BUILD)/tests/cusim/test_cusim $(BUILD)/tests/cusim/test_cusim_sm90a \
                  $(BUILD)/tests/kernels/test_krn_api_sim $(BUILD)/tests/kernels/test_krn_cuda_sim \
                  $(BUILD)/tests/kernels/test_krn_cuda_sim90a \
                  $(CUSIM_UNIT:%=$(BUILD)/tests/sim/%)
CHECK_BINS     += $(CUSIM_TESTS)

$(CUSIM_BUILD)/src/%: % tests/cusim/cusim_pp.py
	@mkdir -p $(@D)
	python3 tests/cusim/cusim_pp.py $< $@

$(CUSIM_BUILD)/%.o: $(CUSIM_BUILD)/src/kernels/cuda/%.cu $(CUSIM_PP) $(CUSIM_HDRS) kernels/krn.h \
  kernels/krn_impl.h
	@mkdir -p $(@D)
	$(CXX) $(CUSIM_CXXFLAGS) -x c++ -c $< -o $@

$(CUSIM_CORE_OBJ): $(CUSIM_BUILD)/%.o: tests/cusim/%.cc $(CUSIM_HDRS)
	@mkdir -p $(@D)
	$(CXX) $(CUSIM_CXXFLAGS) -c $< -o $@

$(CUSIM_LIB): $(KRN_C_OBJ) $(CUSIM_OBJ)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

# test_krn_cuda.c as it is, built without the cuBLAS comparisons (there is no
# cuBLAS to emulate); its object lives apart from the real one's.
$(CUSIM_BUILD)/test_krn_cuda_sim.o: tests/kernels/test_krn_cuda.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/tests/kernels/test_krn_cuda_sim: $(CUSIM_BUILD)/test_krn_cuda_sim.o $(CUSIM_LIB) $(SHARED_LIB)
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS) -o $@ $^ $(DEP_LIBS) -lopenblas -lcmocka

# the op API's tests, whose device-pointer copies need a device
$(BUILD)/tests/kernels/test_krn_api_sim: $(BUILD)/tests/kernels/test_krn_api.o $(CUSIM_LIB) $(SHARED_LIB)
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS) -o $@ $^ $(DEP_LIBS) -lopenblas -lcmocka

# the same test on an emulated sm_90a device (H100-like: kernels 7 and 8 run), with
# cp.async landing at issue (the sm_80 run lands it at the wait: both extremes)
$(CUSIM_BUILD)/arch_sm90a.o $(CUSIM_BUILD)/cp_eager.o: $(CUSIM_BUILD)/%.o: tests/cusim/%.cc
	@mkdir -p $(@D)
	$(CXX) $(CUSIM_CXXFLAGS) -c $< -o $@

$(BUILD)/tests/kernels/test_krn_cuda_sim90a: $(CUSIM_BUILD)/test_krn_cuda_sim.o \
  $(CUSIM_BUILD)/arch_sm90a.o $(CUSIM_BUILD)/cp_eager.o $(CUSIM_LIB) $(SHARED_LIB)
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS) -o $@ $^ $(DEP_LIBS) -lopenblas -lcmocka

$(CUSIM_BUILD)/test_cusim.o: tests/cusim/test_cusim.cc $(CUSIM_HDRS)
	@mkdir -p $(@D)
	$(CXX) $(CUSIM_CXXFLAGS) -c $< -o $@

$(BUILD)/tests/cusim/test_cusim: $(CUSIM_BUILD)/test_cusim.o $(CUSIM_CORE_OBJ)
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS) -o $@ $^ -lcmocka

$(BUILD)/tests/cusim/test_cusim_sm90a: $(CUSIM_BUILD)/test_cusim.o $(CUSIM_CORE_OBJ) \
  $(CUSIM_BUILD)/arch_sm90a.o
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS) -o $@ $^ -lcmocka

# the worker without NCCL, and the unit tests with a GPU part on the emulator
$(CUSIM_BUILD)/wrk_nccl.o: worker/wrk_nccl.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@

CUSIM_WRK_OBJ := $(filter-out $(BUILD)/worker/wrk_nccl.o,$(WRK_LIBOBJ)) $(CUSIM_BUILD)/wrk_nccl.o
$(BUILD)/tests/sim/test_%: $(BUILD)/tests/unit/test_%.o $(CTL_LIBOBJ) $(CUSIM_WRK_OBJ) \
  $(KRN_BENCH_REF_OBJ) $(SHARED_LIB) $(CUSIM_LIB)
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS) -o $@ $(filter %.o %.a,$^) $(DEP_LIBS) -lopenblas -ldl -lcmocka

.PHONY: cusim-check
cusim-check: $(CUSIM_TESTS)
	@set -e; for t in $(CUSIM_TESTS); do echo "== $$t"; $$t; done
