# ctest runs every Catch2 case of BINARY exactly once: each ctest test that runs BINARY (in
# TEST_DIR's ctest tree) selects exactly one case, and together they select every case.
#   cmake -DBINARY=<catch2 binary> -DTEST_DIR=<build dir> -DCTEST=<ctest> -P check_catch_cases.cmake
# Names are kept encoded (';', '[' and ']' replaced) while in CMake lists, which split on ';' and
# do not split inside brackets: the very characters this check is about.
cmake_minimum_required(VERSION 3.21)
foreach(var BINARY TEST_DIR CTEST)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_catch_cases: -D${var}=... is required")
  endif()
endforeach()

function(encode_lines text out)
  string(REPLACE ";" "<semicolon>" text "${text}")
  string(REPLACE "[" "<lbracket>" text "${text}")
  string(REPLACE "]" "<rbracket>" text "${text}")
  string(REPLACE "\r" "" text "${text}")
  string(REPLACE "\n" ";" lines "${text}")
  list(FILTER lines EXCLUDE REGEX "^$")
  set(${out} "${lines}" PARENT_SCOPE)
endfunction()

function(decode text out)
  string(REPLACE "<semicolon>" ";" text "${text}")
  string(REPLACE "<lbracket>" "[" text "${text}")
  string(REPLACE "<rbracket>" "]" text "${text}")
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

# Every case of the binary (its exit code is the number listed, not an error).
execute_process(COMMAND "${BINARY}" --list-test-names-only
  OUTPUT_VARIABLE listing ERROR_VARIABLE listing_err RESULT_VARIABLE rc)
encode_lines("${listing}" cases)
list(LENGTH cases num_cases)
if(num_cases EQUAL 0)
  message(FATAL_ERROR "${BINARY} lists no test cases (exit ${rc}): ${listing_err}")
endif()

# What ctest runs.
execute_process(COMMAND "${CTEST}" --show-only=json-v1 WORKING_DIRECTORY "${TEST_DIR}"
  OUTPUT_VARIABLE json RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "ctest --show-only=json-v1 failed in ${TEST_DIR} (exit ${rc})")
endif()
file(REAL_PATH "${BINARY}" binary_real)
string(JSON num_tests LENGTH "${json}" tests)
set(selected "")
set(errors "")
set(num_entries 0)
if(num_tests GREATER 0)
  math(EXPR last "${num_tests} - 1")
  foreach(i RANGE ${last})
    string(JSON num_args ERROR_VARIABLE no_command LENGTH "${json}" tests ${i} command)
    if(no_command OR num_args LESS 2)
      continue()
    endif()
    string(JSON exe GET "${json}" tests ${i} command 0)
    if(NOT EXISTS "${exe}")
      continue()
    endif()
    file(REAL_PATH "${exe}" exe_real)
    if(NOT exe_real STREQUAL binary_real)
      continue()
    endif()
    math(EXPR num_entries "${num_entries} + 1")
    string(JSON name GET "${json}" tests ${i} name)
    string(JSON spec GET "${json}" tests ${i} command 1)
    # A quoted argument stays one argument whatever it holds.
    execute_process(COMMAND "${BINARY}" "${spec}" --list-test-names-only
      OUTPUT_VARIABLE picked ERROR_VARIABLE picked_err)
    encode_lines("${picked}" picked)
    list(LENGTH picked num_picked)
    if(NOT num_picked EQUAL 1)
      string(APPEND errors "\n  ctest test '${name}' selects ${num_picked} cases (spec '${spec}')")
    endif()
    list(APPEND selected ${picked})
  endforeach()
endif()

foreach(case IN LISTS cases)
  set(count 0)
  foreach(s IN LISTS selected)
    if(s STREQUAL case)
      math(EXPR count "${count} + 1")
    endif()
  endforeach()
  if(NOT count EQUAL 1)
    decode("${case}" plain)
    string(APPEND errors "\n  case '${plain}' is run by ${count} ctest tests")
  endif()
endforeach()

if(errors)
  message(FATAL_ERROR
    "${BINARY}: Catch2 cases and ctest tests do not match one to one (keep ';' and '[' out of "
    "test names: ctest's discovery splits or merges them):${errors}")
endif()
message(STATUS "${BINARY}: ${num_cases} Catch2 cases, each exactly one of ${num_entries} ctest tests")
