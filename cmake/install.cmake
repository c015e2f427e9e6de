# Install rules and the package config, so consumers can `find_package(lsa)` and link `lsa::lsa`.
# Included from the top-level CMakeLists.txt when LSA_INSTALL is ON (GNUInstallDirs is already in).
include(CMakePackageConfigHelpers)

set(LSA_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/lsa"
    CACHE STRING "Where lsaConfig.cmake is installed, relative to the prefix")

# The whole public tree (detail/ and .cuh included): public headers include each other by path.
install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/lsa" DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")

install(TARGETS lsa EXPORT lsaTargets
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}")

# The CUDA backend joins the same export set (as lsa::cuda) when it is built.
set(LSA_CONFIG_FIND_CUDA "")
if(TARGET lsa_cuda)
  install(TARGETS lsa_cuda EXPORT lsaTargets
    ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
    LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
    RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}")
  set(LSA_CONFIG_FIND_CUDA "find_dependency(CUDAToolkit)")
endif()

install(EXPORT lsaTargets
  NAMESPACE lsa::
  FILE lsaTargets.cmake
  DESTINATION "${LSA_INSTALL_CMAKEDIR}")

configure_package_config_file(
  "${CMAKE_CURRENT_LIST_DIR}/lsaConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/lsaConfig.cmake"
  INSTALL_DESTINATION "${LSA_INSTALL_CMAKEDIR}")
# 0.x: SameMajorVersion accepts any 0.y; tighten to SameMinorVersion if 0.x breaks ABI often.
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/lsaConfigVersion.cmake"
  VERSION "${PROJECT_VERSION}"
  COMPATIBILITY SameMajorVersion)
install(FILES
  "${PROJECT_BINARY_DIR}/lsaConfig.cmake"
  "${PROJECT_BINARY_DIR}/lsaConfigVersion.cmake"
  DESTINATION "${LSA_INSTALL_CMAKEDIR}")
