/* cuda_runtime.h (cusim): stands in for the CUDA toolkit's header; see ../cusim.h. */
#include "../cusim.h"
