# CMake's convention for a top-level lsa: -DBUILD_TESTING=OFF leaves out the tests, benchmarks and
# examples; an explicit LSA_BUILD_TESTS=ON still builds the tests. Configures lsa twice in WORK_DIR.
#   cmake -DLSA_SOURCE_DIR=... -DWORK_DIR=... [-DCXX_COMPILER=...] [-DGENERATOR=...]
#         -P run_build_testing.cmake
cmake_minimum_required(VERSION 3.21)
foreach(_var LSA_SOURCE_DIR WORK_DIR)
  if(NOT DEFINED ${_var} OR "${${_var}}" STREQUAL "")
    message(FATAL_ERROR "run_build_testing.cmake: -D${_var}=... is required")
  endif()
endforeach()
file(REMOVE_RECURSE "${WORK_DIR}")

# Configures LSA_SOURCE_DIR into WORK_DIR/<name> with the given options.
function(configure name)
  set(_cmd "${CMAKE_COMMAND}" -S "${LSA_SOURCE_DIR}" -B "${WORK_DIR}/${name}" -DLSA_ENABLE_CUDA=OFF)
  if(GENERATOR)
    list(APPEND _cmd -G "${GENERATOR}")
  endif()
  if(CXX_COMPILER)
    list(APPEND _cmd "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
  endif()
  execute_process(COMMAND ${_cmd} ${ARGN} RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "configure ${name} failed (${_rc}):\n${_out}")
  endif()
endfunction()

# Fails unless WORK_DIR/<name>/<subdir> exists (want TRUE) or not (want FALSE).
function(expect_dir name subdir want)
  if(EXISTS "${WORK_DIR}/${name}/${subdir}")
    set(_has TRUE)
  else()
    set(_has FALSE)
  endif()
  if(NOT _has STREQUAL want)
    message(FATAL_ERROR "${name}: ${subdir} in the build tree: expected ${want}, got ${_has}")
  endif()
endfunction()

configure(off -DBUILD_TESTING=OFF)
expect_dir(off tests FALSE)
expect_dir(off bench FALSE)
expect_dir(off examples FALSE)

configure(off-but-tests -DBUILD_TESTING=OFF -DLSA_BUILD_TESTS=ON)
expect_dir(off-but-tests tests/CTestTestfile.cmake TRUE)
expect_dir(off-but-tests bench FALSE)
message(STATUS "BUILD_TESTING=OFF honoured; LSA_BUILD_TESTS=ON still builds the tests")
