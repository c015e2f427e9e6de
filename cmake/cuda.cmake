# The CUDA backend switch. LSA_ENABLE_CUDA: AUTO (default; on when a CUDA compiler is found), ON
# (a missing compiler is an error) or OFF. Included from the top-level CMakeLists.txt because
# enable_language must run in a directory that contains every CUDA target (cuda/, tests/cuda/,
# bench/cuda/). Sets LSA_CUDA to TRUE when the backend is built.
set(LSA_ENABLE_CUDA AUTO CACHE STRING
    "Build the CUDA backend lsa::cuda: AUTO (when a CUDA compiler is found), ON or OFF")
set_property(CACHE LSA_ENABLE_CUDA PROPERTY STRINGS AUTO ON OFF)

set(LSA_CUDA FALSE)
string(TOUPPER "${LSA_ENABLE_CUDA}" _lsa_cuda_mode)
if(_lsa_cuda_mode STREQUAL "AUTO")
  if(LSA_SANITIZE)
    # nvcc takes no -fsanitize; device code is checked with compute-sanitizer instead.
    message(STATUS "lsa: CUDA backend off in sanitizer builds (LSA_SANITIZE=${LSA_SANITIZE})")
  else()
    include(CheckLanguage)
    check_language(CUDA)
    if(CMAKE_CUDA_COMPILER)
      set(LSA_CUDA TRUE)
    else()
      message(STATUS "lsa: no CUDA compiler found: CUDA backend off")
    endif()
  endif()
elseif(LSA_ENABLE_CUDA)
  if(LSA_SANITIZE)
    message(FATAL_ERROR "LSA_ENABLE_CUDA=ON cannot be combined with LSA_SANITIZE "
                        "(nvcc takes no -fsanitize; use compute-sanitizer on the gpu tests)")
  endif()
  set(LSA_CUDA TRUE)
endif()

if(LSA_CUDA)
  # Machine code for sm_80 and sm_90 plus sm_90 PTX; never `native`, so machines with nvcc and no
  # GPU (CI) build the same binaries.
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES AND NOT DEFINED ENV{CUDAARCHS})
    set(CMAKE_CUDA_ARCHITECTURES "80-real;90-real;90-virtual" CACHE STRING
        "CUDA architectures (lsa's default: sm_80 and sm_90 machine code, sm_90 PTX)")
  endif()
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
  message(STATUS "lsa: CUDA backend on (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, "
                 "architectures ${CMAKE_CUDA_ARCHITECTURES})")
endif()

# Settings every lsa CUDA target shares: C++20 for .cu files (CMake < 3.26 knows no CUDA20 dialect
# for nvcc, hence the plain flag) and the shared CUDA runtime, which lsa::cuda also links.
function(lsa_cuda_target target)
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-std=c++20>)
  set_target_properties(${target} PROPERTIES CUDA_RUNTIME_LIBRARY Shared)
endfunction()
