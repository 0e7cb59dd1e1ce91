// Uses the installed headers and libraries without a database: builds an event and checks
// the bundled migrations are there.
#include <cstdio>

#include <deedkit/eventstore/event_store.hpp>
#include <deedkit/eventstore/migrations.hpp>
#include <deedkit/outbox/relay.hpp>
#include <deedkit/projections/real_estate.hpp>
#include <deedkit/service/http_service.hpp>

int main() {
  deedkit::NewEvent event;
  event.event_id = deedkit::new_uuid();
  event.event_type = "consumer.Started";
  const auto expected = deedkit::ExpectedVersion::exact(3);
  if (deedkit::bundled_migrations().empty() || expected.to_string() != "3") return 1;
  if (deedkit::realestate::make_real_estate_projections().empty()) return 1;
  std::printf("deedkit consumer ok: %s\n", deedkit::to_string(event.event_id).c_str());
  return 0;
}
