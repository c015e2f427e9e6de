# Catch2 binaries as ctest tests, with the checks that keep a test from passing without running.
# Catch2's imported targets are visible only below the directory that finds it: tests/ and
# tests/cuda are siblings, so each including directory finds it.
find_package(Catch2 REQUIRED)
include(Catch)
include_guard(GLOBAL)

set(_lsa_check_catch_cases "${CMAKE_CURRENT_LIST_DIR}/check_catch_cases.cmake")

# lsa_catch_tests(<target> LABEL <label>)
#  - each TEST_CASE of <target> becomes one ctest test labelled <label>;
#  - "-w NoTests": a ctest test whose spec selects no case fails (Catch2 exits 2 on "No tests ran")
#    instead of passing: a ';' in a name splits it into specs that match nothing;
#  - a test whose output contains LSA_TEST_SKIPPED is reported as skipped, not passed (Catch2 v2
#    has no SKIP; e.g. GPU tests on a machine without a GPU print it);
#  - "<target>: every Catch2 case is exactly one ctest test" lists the binary's cases and what
#    each ctest test of the binary selects, and fails unless they match one to one (an unbalanced
#    '[' in a name merges several cases into one ctest test).
function(lsa_catch_tests target)
  cmake_parse_arguments(ARG "" "LABEL" "" ${ARGN})
  catch_discover_tests(${target}
    EXTRA_ARGS -w NoTests
    PROPERTIES LABELS "${ARG_LABEL}" SKIP_REGULAR_EXPRESSION "LSA_TEST_SKIPPED")
  add_test(NAME "${target}: every Catch2 case is exactly one ctest test"
    COMMAND "${CMAKE_COMMAND}"
      "-DBINARY=$<TARGET_FILE:${target}>"
      "-DTEST_DIR=${CMAKE_CURRENT_BINARY_DIR}"
      "-DCTEST=${CMAKE_CTEST_COMMAND}"
      -P "${_lsa_check_catch_cases}")
  set_tests_properties("${target}: every Catch2 case is exactly one ctest test" PROPERTIES
    LABELS "${ARG_LABEL}" TIMEOUT 600)
endfunction()
