#pragma once

// Small builders for events in tests.

#include <string>
#include <vector>

#include "deedkit/eventstore/types.hpp"

namespace deedkit::testing {

inline NewEvent make_event(const std::string& payload = "payload",
                           const std::string& type = "test.Happened") {
  NewEvent event;
  event.event_id = new_uuid();
  event.event_type = type;
  event.payload = payload;
  event.metadata.principal = "tester";
  return event;
}

inline std::vector<NewEvent> make_events(int count, const std::string& prefix = "e") {
  std::vector<NewEvent> events;
  for (int i = 0; i < count; ++i) events.push_back(make_event(prefix + std::to_string(i)));
  return events;
}

}  // namespace deedkit::testing
