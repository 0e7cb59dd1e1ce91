# Installs the built tree into a scratch prefix, then configures and builds a tiny consumer
# project that only knows find_package(deedkit). Fails if any step fails.
file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")

execute_process(COMMAND ${CMAKE_COMMAND} --install "${BINARY_DIR}" --prefix "${prefix}"
  RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "cmake --install failed")
endif()

foreach(project IN ITEMS consumer)
  execute_process(COMMAND ${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/package/${project}"
    -B "${WORK_DIR}/${project}" -DCMAKE_PREFIX_PATH=${prefix} RESULT_VARIABLE status)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "configuring ${project} against the installed package failed")
  endif()
  execute_process(COMMAND ${CMAKE_COMMAND} --build "${WORK_DIR}/${project}" -j2
    RESULT_VARIABLE status)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "building ${project} against the installed package failed")
  endif()
endforeach()

execute_process(COMMAND "${WORK_DIR}/consumer/consumer" RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "the consumer built but did not run")
endif()
