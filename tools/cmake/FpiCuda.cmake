# FPI_CUDA=AUTO|ON|OFF: decides whether the CUDA backend (src/backend/cuda, kernels/) is built.
# AUTO builds it when nvcc is found; ON fails when it is not. Without it, asking for a CUDA device
# raises a clear fpi::Error at run time.
#
# Included from the top-level CMakeLists.txt before any target exists: enable_language() must run at
# directory scope, and CMAKE_CUDA_ARCHITECTURES / CMAKE_CUDA_RUNTIME_LIBRARY only initialise targets
# created after they are set.
include(CheckLanguage)

set(FPI_WITH_CUDA OFF)
if(NOT FPI_CUDA STREQUAL "OFF")
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(FPI_WITH_CUDA ON)
  elseif(FPI_CUDA STREQUAL "ON")
    message(FATAL_ERROR "FPI_CUDA=ON but no CUDA compiler was found (set CMAKE_CUDA_COMPILER or put nvcc on PATH)")
  endif()
endif()

if(FPI_WITH_CUDA)
  # H100/H200. nvcc's own default (sm_75) would run on them only through a slow JIT of its PTX, and
  # `native` fails on a machine without a GPU. Pass -DCMAKE_CUDA_ARCHITECTURES=... for other cards.
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 90)
  endif()
  # One shared cudart for the library and every program linking it, not a static copy beside it.
  set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
  # cuDNN has no CMake package. It is under the CUDA Toolkit on a developer machine; on the GPU
  # machines it may exist only inside PyTorch's Python environment (FPI_CUDNN_ROOT, set by
  # unpack-debs.sh), whose wheel ships libcudnn.so.9 without the unversioned libcudnn.so link.
  find_path(FPI_CUDNN_INCLUDE_DIR cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS} ENV FPI_CUDNN_ROOT ENV CUDNN_ROOT
            PATH_SUFFIXES include)
  find_library(FPI_CUDNN_LIBRARY NAMES cudnn libcudnn.so.9 HINTS ${CUDAToolkit_LIBRARY_DIR} ENV FPI_CUDNN_ROOT
               ENV CUDNN_ROOT PATH_SUFFIXES lib64 lib)
  if(NOT FPI_CUDNN_INCLUDE_DIR OR NOT FPI_CUDNN_LIBRARY)
    message(FATAL_ERROR "cuDNN was not found (set FPI_CUDNN_ROOT to its install prefix, or configure with "
                        "-DFPI_CUDA=OFF)")
  endif()
  message(STATUS "fpi: CUDA backend ON (architectures ${CMAKE_CUDA_ARCHITECTURES}, cuDNN ${FPI_CUDNN_LIBRARY})")
else()
  message(STATUS "fpi: CUDA backend OFF")
endif()

# Adds the CUDA backend's sources to `target` (the library) when it is built.
function(fpi_add_cuda_backend target)
  if(NOT FPI_WITH_CUDA)
    return()
  endif()
  file(GLOB sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/backend/cuda/*.cpp ${PROJECT_SOURCE_DIR}/kernels/*.cu)
  target_sources(${target} PRIVATE ${sources})
  # CMake 3.25 does not know CUDA_STANDARD 20; nvcc gets -std=c++20 directly.
  set_target_properties(${target} PROPERTIES CUDA_STANDARD_REQUIRED OFF)
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-std=c++20 -Xcompiler=-Wall,-Wextra>)
  # cuBLAS is opened at its first use (src/backend/cuda/cublas.hpp says why), by soname or else from
  # where it is found here; only its headers are needed at build time.
  get_target_property(cublas_library CUDA::cublas LOCATION)
  target_compile_definitions(${target} PRIVATE FPI_WITH_CUDA FPI_CUBLAS_LIBRARY="${cublas_library}")
  # kernels/ is included as "kernels/...", next to "backend/..." from src/.
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR} ${FPI_CUDNN_INCLUDE_DIR})
  target_link_libraries(${target} PRIVATE CUDA::cudart ${FPI_CUDNN_LIBRARY} ${CMAKE_DL_LIBS})
endfunction()
