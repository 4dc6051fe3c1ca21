// Test helpers that start real qeff binaries as child processes.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

namespace qeff::testing {

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs a command to completion, capturing stdout and stderr.
CommandResult RunCommand(const std::vector<std::string>& argv);

// A server binary started with --listen 127.0.0.1:0; Start() waits for its "listening on" line.
class ServerProcess {
 public:
  ServerProcess() = default;
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  ~ServerProcess();

  // Returns false (with the reason in error()) if the server did not come up within 30 s.
  bool Start(const std::string& binary, const std::string& cache_dir, std::vector<std::string> extra = {});
  const std::string& address() const { return address_; }
  // The address of another listener the server announced before its gRPC one, as
  // "<name> listening on HOST:PORT" (e.g. "http"); empty if none.
  std::string address(const std::string& name) const {
    auto it = named_.find(name);
    return it == named_.end() ? std::string() : it->second;
  }
  pid_t pid() const { return pid_; }
  const std::string& error() const { return error_; }
  // Sends `sig` and waits; returns the exit status as from waitpid (or -1).
  int Stop(int sig);

 private:
  pid_t pid_ = -1;
  std::string address_;
  std::map<std::string, std::string> named_;
  std::string error_;
};

// Absolute path of a built binary, e.g. Binary("qeffctl").
std::string Binary(const std::string& name);

}  // namespace qeff::testing
