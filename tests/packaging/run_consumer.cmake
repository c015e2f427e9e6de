# Builds and runs tests/packaging/consumer against lsa, the way a downstream project would.
#   cmake -DMODE=install|subdirectory -DLSA_SOURCE_DIR=... -DLSA_BINARY_DIR=... -DWORK_DIR=...
#         [-DLSA_VERSION=x.y.z] [-DCXX_COMPILER=...] [-DGENERATOR=...] [-DSANITIZE=address,undefined]
#         -P run_consumer.cmake
# install:      `cmake --install LSA_BINARY_DIR` into WORK_DIR/prefix, then find_package(lsa).
# subdirectory: the consumer add_subdirectory()s LSA_SOURCE_DIR.
cmake_minimum_required(VERSION 3.21)

foreach(_var MODE LSA_SOURCE_DIR WORK_DIR)
  if(NOT DEFINED ${_var} OR "${${_var}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer.cmake: -D${_var}=... is required")
  endif()
endforeach()
if(NOT DEFINED JOBS)
  set(JOBS 2)
endif()

# Runs a command, echoing it; stops the script with its output when it fails.
function(lsa_run)
  string(REPLACE ";" " " _shown "${ARGN}")
  message(STATUS "$ ${_shown}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
  message("${_out}")
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "failed (${_rc}): ${_shown}")
  endif()
endfunction()

set(_consumer_src "${CMAKE_CURRENT_LIST_DIR}/consumer")
set(_consumer_build "${WORK_DIR}/consumer-build")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

set(_configure "${CMAKE_COMMAND}" -S "${_consumer_src}" -B "${_consumer_build}"
    -DCMAKE_BUILD_TYPE=Release "-DLSA_SOURCE_DIR=${LSA_SOURCE_DIR}")
if(GENERATOR)
  list(APPEND _configure -G "${GENERATOR}")
endif()
if(CXX_COMPILER)
  list(APPEND _configure "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
endif()
if(SANITIZE)
  # An instrumented lsa needs an instrumented consumer link (and, as a subproject, the same flags).
  list(APPEND _configure "-DCMAKE_CXX_FLAGS=-fsanitize=${SANITIZE} -fno-omit-frame-pointer"
       "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=${SANITIZE}")
endif()

if(MODE STREQUAL "install")
  if(NOT LSA_BINARY_DIR)
    message(FATAL_ERROR "run_consumer.cmake: install mode needs -DLSA_BINARY_DIR=...")
  endif()
  set(_prefix "${WORK_DIR}/prefix")
  lsa_run("${CMAKE_COMMAND}" --install "${LSA_BINARY_DIR}" --prefix "${_prefix}" --config Release)
  foreach(_file include/lsa/status.hpp)
    if(NOT EXISTS "${_prefix}/${_file}")
      message(FATAL_ERROR "install did not produce ${_prefix}/${_file}")
    endif()
  endforeach()
  list(APPEND _configure -DLSA_CONSUMER_MODE=package "-DCMAKE_PREFIX_PATH=${_prefix}"
       "-DLSA_EXPECTED_VERSION=${LSA_VERSION}"
       # Only the fresh prefix may satisfy find_package(lsa): not the user package registry.
       -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
elseif(MODE STREQUAL "subdirectory")
  list(APPEND _configure -DLSA_CONSUMER_MODE=subdirectory)
else()
  message(FATAL_ERROR "run_consumer.cmake: MODE must be 'install' or 'subdirectory' (got '${MODE}')")
endif()

lsa_run(${_configure})
lsa_run("${CMAKE_COMMAND}" --build "${_consumer_build}" --config Release -j "${JOBS}")

find_program(_exe lsa_consumer PATHS "${_consumer_build}" "${_consumer_build}/Release" NO_DEFAULT_PATH)
if(NOT _exe)
  message(FATAL_ERROR "no lsa_consumer executable under ${_consumer_build}")
endif()
lsa_run("${_exe}")
message(STATUS "consumer (${MODE}) built and ran")
