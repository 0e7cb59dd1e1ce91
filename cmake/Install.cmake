include(CMakePackageConfigHelpers)

set(DEEDKIT_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/deedkit)
install(EXPORT deedkitTargets NAMESPACE deedkit:: DESTINATION ${DEEDKIT_CMAKE_DIR})
configure_package_config_file(cmake/deedkitConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/deedkitConfig.cmake INSTALL_DESTINATION ${DEEDKIT_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/deedkitConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/deedkitConfig.cmake
  ${CMAKE_CURRENT_BINARY_DIR}/deedkitConfigVersion.cmake DESTINATION ${DEEDKIT_CMAKE_DIR})
