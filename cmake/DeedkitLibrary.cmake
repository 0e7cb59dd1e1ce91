# deedkit_library(name SOURCES ...): one engine folder, one library target deedkit::<name>.
# Public headers live under <folder>/include/deedkit/<name>/ and install with the target.
function(deedkit_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES" ${ARGN})
  add_library(deedkit_${name} ${ARG_SOURCES})
  add_library(deedkit::${name} ALIAS deedkit_${name})
  set_target_properties(deedkit_${name} PROPERTIES EXPORT_NAME ${name} OUTPUT_NAME deedkit_${name})
  target_include_directories(deedkit_${name} PUBLIC
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  install(TARGETS deedkit_${name} EXPORT deedkitTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
endfunction()
