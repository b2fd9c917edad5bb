# longctx — build, test, run, bench, plots, profile.
#   make            build build/longctx (C backend always; CUDA backend when nvcc is found)
#   make test       build and run every test (GPU tests too when a CUDA device is present)
#   make run        the default sweep (C backend without a GPU, CUDA with one) + figures
#   make plots      render plots/*.png and *.pdf from results/*.csv (needs gnuplot)
# Options: CUDA=0 (no CUDA backend), NVTX=0 (no NVTX ranges), SAN=1 (ASan+UBSan, C code only).

CUDA_HOME ?= $(or $(patsubst %/bin/nvcc,%,$(shell command -v nvcc 2>/dev/null)),/usr/local/cuda)
NVCC      ?= $(CUDA_HOME)/bin/nvcc
SAN       ?= 0
NVTX      ?= 1
ifeq ($(SAN),1)
  CUDA := 0
endif
CUDA ?= $(if $(wildcard $(NVCC)),1,0)
GBENCH ?= $(if $(wildcard /usr/include/benchmark/benchmark.h /usr/local/include/benchmark/benchmark.h),1,0)

# Builds with other flags never share objects: SAN=1 -> build/san; CUDA=0 on a machine that
# has nvcc -> build/nocuda. The default build (with or without nvcc) is build/.
BUILD := build$(if $(filter 1,$(SAN)),/san,$(if $(and $(filter 0,$(CUDA)),$(wildcard $(NVCC))),/nocuda,))
CC    ?= gcc
CXX   ?= g++
INC   := -Ikernels -Imodel -Isuites -Ibench
DEFS  := -D_GNU_SOURCE -DLC_CUDA=$(CUDA) -DLC_GBENCH=$(GBENCH) -DLC_NVTX=$(if $(filter 1,$(CUDA)),$(NVTX),0)
OPT   := -O2 -g
ifeq ($(SAN),1)
  SANF := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif
CFLAGS   := -std=c11 $(OPT) -Wall -Wextra -fopenmp $(SANF) $(DEFS) $(INC)
CXXFLAGS := -std=c++17 $(OPT) -Wall -Wextra $(SANF) $(DEFS) $(INC)
ifeq ($(CUDA),1)
  CFLAGS   += -I$(CUDA_HOME)/include
  CXXFLAGS += -I$(CUDA_HOME)/include
endif
NVCCFLAGS := -O3 -std=c++17 -lineinfo --expt-relaxed-constexpr $(DEFS) $(INC) \
             -gencode arch=compute_90a,code=sm_90a -gencode arch=compute_90,code=sm_90 \
             -Xcompiler -Wall,-Wextra
LDLIBS := -lm -lpthread -fopenmp $(SANF)
ifeq ($(CUDA),1)
  LDLIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart
endif
ifeq ($(GBENCH),1)
  LDLIBS += -lbenchmark
endif

# Sources are discovered: a new file in a folder is built without touching this file.
# *_nocuda.c only without CUDA; *_nogbench.c only without Google Benchmark.
C_ALL   := $(wildcard kernels/*.c model/*.c suites/*.c bench/*.c)
C_SRC   := $(filter-out model/longctx.c,$(C_ALL))
ifeq ($(CUDA),1)
  C_SRC := $(filter-out %_nocuda.c,$(C_SRC))
  CU_SRC := $(wildcard kernels/*.cu)
endif
ifeq ($(GBENCH),1)
  C_SRC := $(filter-out %_nogbench.c,$(C_SRC))
  CXX_SRC := $(wildcard bench/*.cpp)
endif
OBJ := $(C_SRC:%.c=$(BUILD)/%.o) $(CU_SRC:%.cu=$(BUILD)/%.cu.o) $(CXX_SRC:%.cpp=$(BUILD)/%.o)
LIB := $(BUILD)/liblongctx.a
BIN := $(BUILD)/longctx

TEST_SRC := $(wildcard tests/test_*.c)
GPU_TEST_SRC := $(if $(filter 1,$(CUDA)),$(wildcard tests/gpu_*.c),)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%) $(GPU_TEST_SRC:tests/%.c=$(BUILD)/tests/%)

.PHONY: all features test run plots bench profile clean setup-test setup-run
all: features $(BIN)

features:
	@printf 'longctx build (%s): nvcc %s | cuBLAS %s | NVTX %s | Google Benchmark %s | gnuplot %s\n' \
	  "$(BUILD)" \
	  "$(if $(filter 1,$(CUDA)),yes ($(shell $(NVCC) --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')),no)" \
	  "$(if $(wildcard $(CUDA_HOME)/include/cublas_v2.h),$(if $(filter 1,$(CUDA)),yes,found (unused: CUDA=0)),no)" \
	  "$(if $(filter 1,$(CUDA)),$(if $(filter 1,$(NVTX)),yes,off (NVTX=0)),no)" \
	  "$(if $(filter 1,$(GBENCH)),yes,no (bench shim disabled))" \
	  "$(if $(shell command -v gnuplot 2>/dev/null),yes,no (make plots unavailable))"

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@
$(BUILD)/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -MMD -MP -c $< -o $@
$(BUILD)/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(BUILD)/model/longctx.o $(LIB)
	$(CXX) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(wildcard tests/*.h) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $< $(LIB) -o $@ $(LDLIBS) -lstdc++

setup-test:
	@scripts/setup.sh test
setup-run:
	@scripts/setup.sh run

test: setup-test all $(TEST_BIN)
	@BUILD=$(BUILD) tests/run.sh $(TEST_BIN)

run: setup-run all
	@BUILD=$(BUILD) scripts/run.sh

plots:
	@scripts/setup.sh plots
	@for f in plots/*.gp; do echo "gnuplot $$f"; gnuplot -e "outdir='plots'" $$f || exit 1; done

# bench/registry.c lists the kernel families whose bench/bench_*.c exist (__has_include).
$(BUILD)/bench/registry.o: $(wildcard bench/bench_*.c)

clean:
	rm -rf build

-include $(wildcard $(BUILD)/*/*.d)
