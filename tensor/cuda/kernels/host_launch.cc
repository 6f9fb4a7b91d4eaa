// host_launch.cc: the thread-local grid state the host build of the
// kernels reads (see maas_cuda.h). Only compiled for the host emulation.
#include "maas_cuda.h"

thread_local maas_dim3 maas_thread_idx, maas_block_idx, maas_block_dim, maas_grid_dim;
