# Installs the built tree into a scratch prefix, then configures and builds, against that
# prefix only, a tiny consumer and the application in examples/tool_rental (its own aggregate
# on the engine). Runs both; the example runs on a fresh database when DEEDKIT_TEST_PG names
# the test server. Fails if any step fails.
file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")

execute_process(COMMAND ${CMAKE_COMMAND} --install "${BINARY_DIR}" --prefix "${prefix}"
  RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "cmake --install failed")
endif()

foreach(project IN ITEMS consumer tool_rental)
  if(project STREQUAL "consumer")
    set(source "${SOURCE_DIR}/tests/package/consumer")
  else()
    set(source "${SOURCE_DIR}/examples/${project}")
  endif()
  execute_process(COMMAND ${CMAKE_COMMAND} -S "${source}"
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

set(example "${WORK_DIR}/tool_rental/tool_rental")
if(DEFINED ENV{DEEDKIT_TEST_PG})
  set(server "$ENV{DEEDKIT_TEST_PG}")
  execute_process(COMMAND psql "${server} dbname=postgres" -v ON_ERROR_STOP=1 -q
    -c "DROP DATABASE IF EXISTS deedkit_tool_rental_example"
    -c "CREATE DATABASE deedkit_tool_rental_example" RESULT_VARIABLE status)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "could not create the example's database on ${server}")
  endif()
  execute_process(COMMAND "${example}" "${server} dbname=deedkit_tool_rental_example"
    RESULT_VARIABLE status)
else()
  message(WARNING "DEEDKIT_TEST_PG is not set: the example runs in memory only")
  execute_process(COMMAND "${example}" RESULT_VARIABLE status)
endif()
if(NOT status EQUAL 0)
  message(FATAL_ERROR "examples/tool_rental built but its story failed")
endif()
