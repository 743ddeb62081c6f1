# Decides whether the CUDA backend is built. CI has nvcc but no GPU: the CUDA sources still compile
# and link there; only running them needs a device.
set(SHARDLM_WITH_CUDA OFF)
if(SHARDLM_CUDA STREQUAL "AUTO")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(SHARDLM_WITH_CUDA ON)
  else()
    message(STATUS "shardlm: no CUDA compiler found, building the CPU backend only")
  endif()
elseif(SHARDLM_CUDA)
  set(SHARDLM_WITH_CUDA ON)
endif()

if(SHARDLM_WITH_CUDA)
  set(CMAKE_CUDA_ARCHITECTURES ${SHARDLM_CUDA_ARCHITECTURES})
  enable_language(CUDA)
  set(CMAKE_CUDA_STANDARD 17)  # CMake 3.25 knows no CUDA 20 flags for nvcc; the kernels need only C++17
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  find_package(CUDAToolkit REQUIRED)
  # NCCL ships with the CUDA install here (no CMake package of its own).
  find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} REQUIRED)
  find_library(NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/lib/x86_64-linux-gnu REQUIRED)
  message(STATUS "shardlm: CUDA backend for architectures ${CMAKE_CUDA_ARCHITECTURES}")
endif()
