// Subjects, headers and bodies of the relay's messages, without servers.

#include <gtest/gtest.h>

#include "deedkit/outbox/relay.hpp"
#include "deedkit/outbox/v1/envelope.pb.h"
#include "internal/message_builder.hpp"

namespace deedkit::internal {
namespace {

OutboxRow sample_row() {
  OutboxRow row;
  row.outbox_id = 7;
  row.event_id = "0ea6e0b6-6921-4858-98ba-3916a85e5e8f";
  row.stream_id = "asset-42";
  row.stream_version = 3;
  row.event_type = "deedkit.realestate.v1.AssetRegistered";
  row.schema_version = 2;
  row.payload = std::string("\x01\x00\x02", 3);
  row.correlation_id = "c";
  row.principal = "alice";
  row.recorded_at_micros = 1700000000123456;
  return row;
}

std::string header(const OutboundMessage& message, const std::string& key) {
  for (const auto& [name, value] : message.headers) {
    if (name == key) return value;
  }
  return "";
}

TEST(MessageBuilderTest, DefaultSubjectIsCategoryAndSubjectSafeType) {
  const auto builder = MessageBuilder::create("deedkit.{category}.{type}",
                                              EnvelopeFormat::kProtobuf);
  ASSERT_TRUE(builder.has_value());

  const auto message = builder->build(sample_row());

  ASSERT_TRUE(message.has_value());
  EXPECT_EQ(message->subject, "deedkit.asset.deedkit_realestate_v1_AssetRegistered");
}

TEST(MessageBuilderTest, CarriesTheHeadersAndTheProtobufEnvelope) {
  const auto builder = MessageBuilder::create("x.{stream}", EnvelopeFormat::kProtobuf);
  const auto message = builder->build(sample_row());

  EXPECT_EQ(header(*message, "Nats-Msg-Id"), "0ea6e0b6-6921-4858-98ba-3916a85e5e8f");
  EXPECT_EQ(header(*message, "Deedkit-Stream"), "asset-42");
  EXPECT_EQ(header(*message, "Deedkit-Version"), "3");
  EXPECT_EQ(header(*message, "Deedkit-Event-Type"), "deedkit.realestate.v1.AssetRegistered");
  deedkit::outbox::v1::Envelope envelope;
  ASSERT_TRUE(envelope.ParseFromString(message->body));
  EXPECT_EQ(envelope.stream_version(), 3);
  EXPECT_EQ(envelope.schema_version(), 2);
  EXPECT_EQ(envelope.payload(), std::string("\x01\x00\x02", 3));
  EXPECT_EQ(envelope.recorded_at().seconds(), 1700000000);
  EXPECT_EQ(envelope.recorded_at().nanos(), 123456000);
  EXPECT_EQ(envelope.principal(), "alice");
  EXPECT_EQ(message->subject, "x.asset-42");
}

TEST(MessageBuilderTest, JsonFormatUsesTheProtobufJsonMapping) {
  const auto builder = MessageBuilder::create("deedkit.{category}.{type}", EnvelopeFormat::kJson);
  const auto message = builder->build(sample_row());

  EXPECT_NE(message->body.find("\"streamVersion\":\"3\""), std::string::npos) << message->body;
  EXPECT_NE(message->body.find("\"payload\":\"AQAC\""), std::string::npos) << message->body;
  EXPECT_EQ(header(*message, "Content-Type"), "application/json");
  EXPECT_EQ(json_line(*message).find("{\"subject\":\"deedkit.asset."), 0u);
}

TEST(MessageBuilderTest, RejectsUnusableSubjectTemplates) {
  for (const std::string bad : {"deedkit.{nope}", "deedkit..{type}", "deedkit.>", "a b.{type}",
                                "deedkit.{type", "deedkit.{type}."}) {
    const auto builder = MessageBuilder::create(bad, EnvelopeFormat::kJson);
    ASSERT_FALSE(builder.has_value()) << bad;
    EXPECT_EQ(builder.error().code, ErrorCode::kInvalidArgument);
  }
}

TEST(MessageBuilderTest, RelayOptionsRefuseSubjectsTheStreamDoesNotTake) {
  RelayOptions options;
  options.nats_url = "nats://127.0.0.1:4222";
  options.subject_template = "events.{category}.{type}";

  const auto outside = validate_relay_options(options);
  options.stream_subjects = {"deedkit.>", "events.*.*"};
  const auto inside = validate_relay_options(options);
  options.stream_subjects = {"events.asset.*"};
  const auto narrower = validate_relay_options(options);

  ASSERT_FALSE(outside.has_value());
  EXPECT_NE(outside.error().message.find("events.*.*"), std::string::npos)
      << outside.error().message;
  EXPECT_TRUE(inside.has_value());
  EXPECT_FALSE(narrower.has_value()) << "a category other than asset would have no stream";
}

TEST(MessageBuilderTest, SubjectCoverageFollowsNatsWildcards) {
  EXPECT_TRUE(subject_covers("deedkit.>", "deedkit.*.*"));
  EXPECT_TRUE(subject_covers("a.*.c", "a.*.c"));
  EXPECT_FALSE(subject_covers("a.b.c", "a.*.c"));
  EXPECT_FALSE(subject_covers("a.*", "a.*.c"));
  EXPECT_FALSE(subject_covers("a.>", "a"));
}

TEST(MessageBuilderTest, SubjectTokenReplacesEverythingOutsideTheSafeSet) {
  EXPECT_EQ(subject_token("a.b c*>d\n-e_f"), "a_b_c__d_-e_f");
  EXPECT_EQ(subject_token(""), "_");
}

TEST(MessageBuilderTest, HeaderValuesLoseLineBreaks) {
  OutboxRow row = sample_row();
  row.stream_id = "asset-1\r\nInjected: yes";
  const auto message =
      MessageBuilder::create("deedkit.{category}.{type}", EnvelopeFormat::kJson)->build(row);

  EXPECT_EQ(header(*message, "Deedkit-Stream"), "asset-1??Injected: yes");
  EXPECT_GT(message->wire_size(), message->body.size());
}

TEST(NatsUrlRedaction, HidesUsersPasswordsAndTokensInEveryUrlOfAList) {
  const std::string redacted = redact_nats_url(
      "nats://relay:s3cret@a.example:4222,nats://t0ken@b.example:4222,nats://c.example:4222");

  EXPECT_EQ(redacted, "nats://***@a.example:4222,nats://***@b.example:4222,nats://c.example:4222");
  EXPECT_EQ(redacted.find("s3cret"), std::string::npos);
  EXPECT_EQ(redacted.find("t0ken"), std::string::npos);
}

}  // namespace
}  // namespace deedkit::internal
