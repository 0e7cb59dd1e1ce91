#include <gtest/gtest.h>
#include <pqxx/connection>
#include <pqxx/transaction>

#include "deedkit/eventstore/migrations.hpp"
#include "event_factory.hpp"
#include "test_database.hpp"

namespace deedkit::testing {
namespace {

class ImmutabilityTest : public DatabaseTest {
 protected:
  // Runs `sql` as the database owner (the test superuser) or, with `role`, after SET ROLE.
  // Returns the deedkit error code it failed with ("permission_denied"), or "ok".
  static std::string attempt(const std::string& sql, const std::string& role = "") {
    pqxx::connection connection(database_uri());
    pqxx::work tx(connection);
    try {
      if (!role.empty()) tx.exec("SET ROLE " + role);
      tx.exec(sql);
      tx.commit();
      return "ok";
    } catch (const std::exception&) {
      return std::string(error_code_name(database_error("attempt").code));
    }
  }

  void SetUp() override {
    stream_ = fresh_stream();
    ASSERT_TRUE(store().append(stream_, ExpectedVersion::no_stream(), make_events(2)));
  }

  std::string count() const {
    return query_value(database_uri(),
                       "SELECT count(*) FROM deedkit.events WHERE stream_id = '" + stream_ + "'");
  }

  std::string stream_;
};

TEST_F(ImmutabilityTest, UpdateIsRefusedEvenForTheOwner) {
  EXPECT_EQ(attempt("UPDATE deedkit.events SET payload = 'x' WHERE stream_id = '" + stream_ + "'"),
            "permission_denied");
  EXPECT_EQ(query_value(database_uri(), "SELECT count(*) FROM deedkit.events WHERE payload = 'x'"),
            "0");
}

TEST_F(ImmutabilityTest, DeleteIsRefusedEvenForTheOwner) {
  EXPECT_EQ(attempt("DELETE FROM deedkit.events WHERE stream_id = '" + stream_ + "'"),
            "permission_denied");
  EXPECT_EQ(count(), "2");
}

TEST_F(ImmutabilityTest, TruncateIsRefusedEvenForTheOwner) {
  EXPECT_EQ(attempt("TRUNCATE deedkit.events"), "permission_denied");
  EXPECT_EQ(count(), "2");
}

TEST_F(ImmutabilityTest, TheWriterRoleCanAppendButHasNoRightToRewrite) {
  const std::string insert =
      "INSERT INTO deedkit.events (stream_id, stream_version, event_id, event_type, payload) "
      "VALUES ('" + stream_ + "', 3, gen_random_uuid(), 'test.Happened', 'p')";

  EXPECT_EQ(attempt(insert, "deedkit_writer"), "ok");
  // The outbox id's default draws from a sequence the writer must be allowed to use.
  EXPECT_EQ(attempt("INSERT INTO deedkit.outbox (event_id, stream_id, stream_version, "
                    "event_type, schema_version, payload, metadata) VALUES "
                    "(gen_random_uuid(), '" + stream_ + "', 3, 't', 1, 'p', '{}')",
                    "deedkit_writer"),
            "ok");
  EXPECT_EQ(attempt("UPDATE deedkit.events SET payload = 'x'", "deedkit_writer"),
            "permission_denied");
  EXPECT_EQ(attempt("DELETE FROM deedkit.events", "deedkit_writer"), "permission_denied");
  EXPECT_EQ(attempt("TRUNCATE deedkit.events", "deedkit_writer"), "permission_denied");
  EXPECT_EQ(attempt("ALTER TABLE deedkit.events DISABLE TRIGGER ALL", "deedkit_writer"),
            "permission_denied");
  EXPECT_EQ(count(), "3");
}

TEST_F(ImmutabilityTest, TheWriterRoleCannotChangeTheSchemaOrReadPrivateTables) {
  EXPECT_EQ(attempt("CREATE TABLE deedkit.intruder (x int)", "deedkit_writer"),
            "permission_denied");
  EXPECT_EQ(attempt("DROP TABLE deedkit.events", "deedkit_writer"), "permission_denied");
  EXPECT_EQ(attempt("ALTER TABLE deedkit.events ADD COLUMN x int", "deedkit_writer"),
            "permission_denied");
  EXPECT_EQ(attempt("UPDATE deedkit.outbox SET published_at = now()", "deedkit_writer"),
            "permission_denied");
  EXPECT_EQ(attempt("SELECT 1 FROM deedkit.schema_migrations", "deedkit_writer"), "ok");
}

TEST_F(ImmutabilityTest, TheRelayRoleOnlyMarksAndRemovesOutboxRows) {
  EXPECT_EQ(attempt("SELECT count(*) FROM deedkit.outbox", "deedkit_relay"), "ok");
  // Its wake-up check and its commit horizon proposal.
  EXPECT_EQ(attempt("SELECT last_value, pg_current_snapshot(), pg_current_xact_id(), "
                    "(SELECT count(*) FROM deedkit.outbox_dead_letters), "
                    "(SELECT count(*) FROM deedkit.schema_migrations), "
                    "pg_relation_filenode('deedkit.outbox_outbox_id_seq') "
                    "FROM deedkit.outbox_outbox_id_seq",
                    "deedkit_relay"),
            "ok");
  EXPECT_EQ(attempt("UPDATE deedkit.outbox SET published_at = now() WHERE false",
                    "deedkit_relay"),
            "ok");
  EXPECT_EQ(attempt("UPDATE deedkit.outbox SET payload = 'x'", "deedkit_relay"),
            "permission_denied");
  EXPECT_EQ(attempt("INSERT INTO deedkit.events (stream_id, stream_version, event_id, "
                    "event_type, payload) VALUES ('x-1', 1, gen_random_uuid(), 't', 'p')",
                    "deedkit_relay"),
            "permission_denied");
  EXPECT_EQ(attempt("SELECT count(*) FROM deedkit.events", "deedkit_relay"),
            "permission_denied");
  EXPECT_EQ(attempt("SELECT count(*) FROM deedkit.idempotency_keys", "deedkit_relay"),
            "permission_denied");
  EXPECT_EQ(count(), "2");
}

TEST_F(ImmutabilityTest, TheProjectorRoleReadsTheLogButWritesOnlyReadModels) {
  EXPECT_EQ(attempt("SELECT count(*) FROM deedkit.events", "deedkit_projector"), "ok");
  EXPECT_EQ(attempt("CREATE TABLE deedkit_read_data.scratch (x int)", "deedkit_projector"),
            "ok");
  EXPECT_EQ(attempt("INSERT INTO deedkit.events (stream_id, stream_version, event_id, "
                    "event_type, payload) VALUES ('x-1', 1, gen_random_uuid(), 't', 'p')",
                    "deedkit_projector"),
            "permission_denied");
  EXPECT_EQ(attempt("SELECT count(*) FROM deedkit.outbox", "deedkit_projector"),
            "permission_denied");
  EXPECT_EQ(attempt("SELECT count(*) FROM deedkit.idempotency_keys", "deedkit_projector"),
            "permission_denied");
  EXPECT_EQ(attempt("CREATE TABLE deedkit.intruder (x int)", "deedkit_projector"),
            "permission_denied");
}

TEST_F(ImmutabilityTest, TheReaderRoleSeesOnlyTheReadModels) {
  EXPECT_EQ(attempt("SELECT count(*) FROM deedkit.events", "deedkit_reader"),
            "permission_denied");
  EXPECT_EQ(attempt("SELECT count(*) FROM deedkit.idempotency_keys", "deedkit_reader"),
            "permission_denied");
  EXPECT_EQ(attempt("CREATE TABLE deedkit_read.intruder (x int)", "deedkit_reader"),
            "permission_denied");
}

TEST_F(ImmutabilityTest, AServiceLoginStartsOnACurrentSchemaWithoutTheOwnersRights) {
  const std::string login = "deedkit_test_service";
  query_value(database_uri(),
              "DO $$ BEGIN CREATE ROLE " + login + " LOGIN IN ROLE deedkit_writer; "
              "EXCEPTION WHEN duplicate_object THEN NULL; END $$");
  const std::string as_service = database_uri() + " user=" + login;

  const auto migrated = migrate(as_service);
  ConnectionPool service_pool({.database_uri = as_service, .max_connections = 1});
  const auto appended =
      EventStore(service_pool).append(fresh_stream(), ExpectedVersion::no_stream(),
                                      make_events(1));

  ASSERT_TRUE(migrated.has_value()) << migrated.error().to_string();
  EXPECT_TRUE(migrated->applied.empty());
  EXPECT_EQ(migrated->already_applied, static_cast<int>(bundled_migrations().size()));
  EXPECT_TRUE(appended.has_value()) << appended.error().to_string();
}

}  // namespace
}  // namespace deedkit::testing
