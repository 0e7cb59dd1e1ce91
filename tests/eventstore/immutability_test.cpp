#include <gtest/gtest.h>
#include <pqxx/connection>
#include <pqxx/transaction>

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
  EXPECT_EQ(attempt("DELETE FROM deedkit.events WHERE stream_id = '" + stream_ + "'"), "permission_denied");
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
  EXPECT_EQ(attempt("UPDATE deedkit.events SET payload = 'x'", "deedkit_writer"), "permission_denied");
  EXPECT_EQ(attempt("DELETE FROM deedkit.events", "deedkit_writer"), "permission_denied");
  EXPECT_EQ(attempt("TRUNCATE deedkit.events", "deedkit_writer"), "permission_denied");
  EXPECT_EQ(attempt("ALTER TABLE deedkit.events DISABLE TRIGGER ALL", "deedkit_writer"), "permission_denied");
  EXPECT_EQ(count(), "3");
}

}  // namespace
}  // namespace deedkit::testing
