#pragma once

// The private default database: with nothing configured, deedkit runs its own PostgreSQL 15
// cluster for the current folder.
//
// The cluster lives in ./.deedkit/postgres (initdb once, Unix socket only, no TCP port). When
// deedkit runs as root, the server runs as the `postgres` user, since PostgreSQL refuses
// root; if that user cannot reach ./.deedkit (a folder under /root, say), the cluster is put
// under /tmp/deedkit-<hash of the folder> instead, and ./.deedkit/cluster says where.
//
// Sharing: several deedkit processes in one folder share the cluster. Start-up is guarded
// by an exclusive lock on ./.deedkit/lock, so only one of them runs initdb or pg_ctl start.
// The server keeps running after the processes end; `deedkit db stop` stops it. (A
// server that stops with the last user would need reference counting that a SIGKILLed
// process cannot release; an explicit stop is simpler to reason about.)

#include <string>

#include "deedkit/core/error.hpp"

namespace deedkit::cli {

struct PrivateCluster {
  std::string data_directory;
  std::string socket_directory;
  std::string database_uri;  // libpq key=value string for database "deedkit"
};

// Where the cluster for `folder` lives; does not create or start anything.
PrivateCluster locate_private_cluster(const std::string& folder);

// Creates (first time) and starts (if stopped) the cluster, and creates the `deedkit`
// database in it. Fails with kUnavailable naming the PostgreSQL log when the server will not
// start, kFailedPrecondition when PostgreSQL 15 is not installed.
[[nodiscard]] Result<PrivateCluster> ensure_private_cluster(const std::string& folder);

// "running (pid N) at <socket>", "stopped", or "not created".
std::string private_cluster_status(const std::string& folder);

// Stops the cluster if it runs. Fails with kInternal when pg_ctl stop fails.
[[nodiscard]] Result<void> stop_private_cluster(const std::string& folder);

}  // namespace deedkit::cli
