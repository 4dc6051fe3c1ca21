#include "tests/integration/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

extern char** environ;

namespace qeff::testing {
namespace {

std::vector<char*> Argv(const std::vector<std::string>& args) {
  std::vector<char*> v;
  for (const auto& a : args) v.push_back(const_cast<char*>(a.c_str()));
  v.push_back(nullptr);
  return v;
}

}  // namespace

std::string Binary(const std::string& name) {
  static const char* const kDirs[] = {"clients/qeffctl", "services/exporter", "services/compiler",
                                      "services/runner", "services/qeffd", "bench"};
  for (const char* d : kDirs) {
    std::string p = std::string(QEFF_BINARY_DIR) + "/" + d + "/" + name;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return std::string(QEFF_BINARY_DIR) + "/" + name;
}

CommandResult RunCommand(const std::vector<std::string>& args) {
  CommandResult r;
  int out[2], err[2];
  // O_CLOEXEC: a child spawned by another thread meanwhile must not inherit these pipes (it would
  // keep them open and stall this read); dup2 clears the flag on the child's 1 and 2.
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) return r;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  posix_spawn_file_actions_addclose(&fa, out[0]);
  posix_spawn_file_actions_addclose(&fa, err[0]);
  pid_t pid;
  auto argv = Argv(args);
  int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) {
    ::close(out[0]);
    ::close(err[0]);
    r.err = "cannot spawn " + args[0] + ": " + std::strerror(rc);
    return r;
  }
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[65536];
  while (open_fds > 0) {
    if (::poll(fds, 2, -1) < 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      } else {
        (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
      }
    }
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

bool ServerProcess::Start(const std::string& binary, const std::string& cache_dir, std::vector<std::string> extra) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return false;
  std::vector<std::string> args = {binary, "--listen", "127.0.0.1:0", "--cache-dir", cache_dir};
  args.insert(args.end(), extra.begin(), extra.end());
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addclose(&fa, out[0]);
  auto argv = Argv(args);
  int rc = posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(out[1]);
  if (rc != 0) {
    error_ = "cannot spawn " + binary + ": " + std::strerror(rc);
    ::close(out[0]);
    pid_ = -1;
    return false;
  }
  std::string line;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  char c;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{out[0], POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    if (::read(out[0], &c, 1) != 1) break;
    if (c != '\n') {
      line.push_back(c);
      continue;
    }
    const std::string prefix = "listening on ";
    if (const size_t at = line.find(" " + prefix); at != std::string::npos && at > 0) {
      named_[line.substr(0, at)] = line.substr(at + 1 + prefix.size());
    }
    if (line.rfind(prefix, 0) == 0) {
      address_ = line.substr(prefix.size());
      ::close(out[0]);  // the server prints nothing else on stdout
      return true;
    }
    line.clear();
  }
  ::close(out[0]);
  error_ = binary + " did not report a listening address";
  Stop(SIGKILL);
  return false;
}

int ServerProcess::Stop(int sig) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, sig);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return status;
}

ServerProcess::~ServerProcess() { Stop(SIGKILL); }

}  // namespace qeff::testing
