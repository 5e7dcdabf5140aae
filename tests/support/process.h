// Process and port helpers shared by the real servers tests start (redis-server,
// PostgreSQL): free loopback ports, spawning as another user, waiting for an exit.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace firebreak::testing {

// A loopback TCP port nobody listens on right now, below the kernel's ephemeral range
// (so no bind(0) or outgoing connection takes it before the test binds it).
uint16_t PickFreePort();

// Whether process `pid` holds a socket listening on TCP `port` (read from /proc): tells
// our server from a neighbour's that answers on the same port.
bool ListensOn(pid_t pid, uint16_t port);

// Waits for `pid` (a child of ours) to exit; true if it did within `timeout`.
bool WaitExit(pid_t pid, std::chrono::milliseconds timeout);

// fork + exec of `args` (args[0] searched in PATH unless it holds a '/'), stdin from
// /dev/null, stdout and stderr appended to `log_path` ("" = /dev/null). With `user`
// set and running as root, the child drops to that user first (PostgreSQL refuses to
// run as root). Returns the child's pid, or -1.
pid_t Spawn(const std::vector<std::string>& args, const std::string& log_path,
            const std::string& user = "");

// Sends `sig` to `root` and every process descending from it (read from /proc), e.g.
// SIGSTOP/SIGCONT to hang a whole PostgreSQL cluster (postmaster and its backends).
// Only for processes the test started. Returns how many were signalled.
int SignalProcessTree(pid_t root, int sig);

// Runs `args` to completion (as Spawn) and returns its exit status, -1 on timeout.
int RunToCompletion(const std::vector<std::string>& args, const std::string& log_path,
                    const std::string& user, std::chrono::milliseconds timeout);

}  // namespace firebreak::testing
