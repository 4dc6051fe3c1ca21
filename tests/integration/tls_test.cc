// Transport security with the real binaries on 127.0.0.1 free ports: TLS / mTLS with a CA made
// here with openssl, bearer tokens, the plaintext --health-listen port, --no-reflection, one
// socket per --listen, Runner readiness while --serve loads, and qeffctl's deadlines and exit.
#include <fcntl.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "grpc/health/v1/health.grpc.pb.h"
#include "qeff/v1/runner.grpc.pb.h"
#include "tests/integration/process.h"

extern char** environ;

namespace qeff::testing {
namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using grpc::health::v1::HealthCheckResponse;

const fs::path kGpt2 = fs::path(QEFF_SOURCE_DIR) / "tests/fixtures/hf/gpt2";

double Seconds(Clock::time_point since) { return std::chrono::duration<double>(Clock::now() - since).count(); }

bool Contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A server binary with its stdout lines up to "listening on": the health / http / metrics
// addresses printed before it. stderr goes to a log file (shown when a start fails).
class Server {
 public:
  Server() = default;
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server() { Stop(SIGKILL); }

  bool Start(const std::string& binary, const fs::path& log, std::vector<std::string> args) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return false;
    args.insert(args.begin(), binary);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int rc = posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(out[1]);
    log_ = log;
    if (rc != 0) {
      ::close(out[0]);
      pid_ = -1;
      return false;
    }
    std::string line;
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    char c;
    while (Clock::now() < deadline) {
      pollfd p{out[0], POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      if (::read(out[0], &c, 1) != 1) break;
      if (c != '\n') {
        line.push_back(c);
        continue;
      }
      auto after = [&](const std::string& prefix, std::string* to) {
        if (line.rfind(prefix, 0) == 0) *to = line.substr(prefix.size());
      };
      after("health listening on ", &health);
      after("http listening on ", &http);
      after("metrics listening on ", &metrics);
      if (line.rfind("listening on ", 0) == 0) {
        address = line.substr(std::strlen("listening on "));
        ::close(out[0]);
        return true;
      }
      line.clear();
    }
    ::close(out[0]);
    Stop(SIGKILL);
    return false;
  }
  std::string Log() const {
    std::ifstream in(log_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  int Stop(int sig) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }
  pid_t pid() const { return pid_; }

  std::string address, health, http, metrics;

 private:
  pid_t pid_ = -1;
  fs::path log_;
};

HealthCheckResponse::ServingStatus Health(const std::string& address, const std::string& service,
                                          grpc::Status* status_out = nullptr) {
  auto stub = grpc::health::v1::Health::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  HealthCheckResponse resp;
  grpc::Status s = stub->Check(&ctx, req, &resp);
  if (status_out != nullptr) *status_out = s;
  return s.ok() ? resp.status() : HealthCheckResponse::UNKNOWN;
}

// One unary call of ServerReflectionInfo (list_services) through a generic stub: OK with the
// service names when reflection is on, UNIMPLEMENTED when off.
grpc::Status Reflect(const std::shared_ptr<grpc::Channel>& channel, std::string* body) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  const char req_bytes[] = {0x3a, 0x00};  // ServerReflectionRequest{list_services: ""}
  grpc::Slice slice(req_bytes, sizeof(req_bytes));
  grpc::ByteBuffer req(&slice, 1), resp;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", grpc::StubOptions(), &req,
                 &resp, [&done](grpc::Status s) { done.set_value(s); });
  grpc::Status s = done.get_future().get();
  std::vector<grpc::Slice> slices;
  if (s.ok() && resp.Dump(&slices).ok()) {
    for (const auto& sl : slices) body->append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  }
  return s;
}

// LISTEN TCP ports of a process (from /proc: its socket inodes in /proc/net/tcp{,6}).
std::set<int> ListeningPorts(pid_t pid) {
  std::set<std::string> inodes;
  for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    std::error_code ec;
    const std::string target = fs::read_symlink(e.path(), ec).string();
    if (!ec && target.rfind("socket:[", 0) == 0) inodes.insert(target.substr(8, target.size() - 9));
  }
  std::set<int> ports;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string sl, local, remote, st, queues, timer, retr, uid, timeout, inode;
      f >> sl >> local >> remote >> st >> queues >> timer >> retr >> uid >> timeout >> inode;
      if (st != "0A" || inodes.count(inode) == 0) continue;
      ports.insert(std::stoi(local.substr(local.rfind(':') + 1), nullptr, 16));
    }
  }
  return ports;
}

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("qeff-tls-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "pki");
    pki_ = dir_ / "pki";
    // A CA, a server certificate for 127.0.0.1/localhost and a client certificate it signs; an
    // unrelated CA and a client certificate signed by that one. EC P-256 keys: fast to make.
    const std::string script = R"(set -e
cd ")" + pki_.string() + R"("
EC="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $EC -keyout ca.key -out ca.crt -days 2 -subj /CN=qeff-test-ca
openssl req -x509 $EC -keyout other-ca.key -out other-ca.crt -days 2 -subj /CN=other-ca
openssl req $EC -keyout server.key -out server.csr -subj /CN=localhost
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile server.ext
printf 'extendedKeyUsage=clientAuth\n' > client.ext
openssl req $EC -keyout client.key -out client.csr -subj /CN=qeff-client
openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 2 -extfile client.ext
openssl req $EC -keyout rogue.key -out rogue.csr -subj /CN=rogue
openssl x509 -req -in rogue.csr -CA other-ca.crt -CAkey other-ca.key -CAcreateserial -out rogue.crt -days 2 -extfile client.ext
)";
    CommandResult r = RunCommand({"/bin/bash", "-c", script});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    std::ofstream(dir_ / "tokens") << "# qeff test tokens\n\n  token-one  \ntoken-two\n";
    std::ofstream(dir_ / "token-two") << "token-two\n";
    std::ofstream(dir_ / "wrong-token") << "token-three\n";
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  void SetUp() override {
    cache_ = dir_ / ("cache-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::create_directories(cache_);
  }

  static std::string P(const char* name) { return (pki_ / name).string(); }
  fs::path Log(const std::string& name) const { return cache_ / (name + ".log"); }

  // qeffctl with the arguments, optionally under `env` (NAME=VALUE) entries.
  static CommandResult Ctl(std::vector<std::string> args, std::vector<std::string> env = {}) {
    std::vector<std::string> argv = {"/usr/bin/env", "-u", "QEFF_TOKEN"};
    argv.insert(argv.end(), env.begin(), env.end());
    argv.push_back(Binary("qeffctl"));
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }
  // curl: "-w %{http_code}" is the last line of out; exit code is curl's.
  static CommandResult Curl(std::vector<std::string> args) {
    std::vector<std::string> argv = {"/usr/bin/env", "curl",        "-sS", "--max-time",  "20",
                                     "-o",           "/dev/stderr", "-w",  "%{http_code}"};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }
  std::vector<std::string> Mtls() const {
    return {"--tls-ca", P("ca.crt"), "--tls-cert", P("client.crt"), "--tls-key", P("client.key")};
  }
  std::vector<std::string> CurlMtls() const {
    return {"--cacert", P("ca.crt"), "--cert", P("client.crt"), "--key", P("client.key")};
  }
  static std::vector<std::string> Cat(std::vector<std::string> a, const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  }

  static fs::path dir_, pki_;
  fs::path cache_;
};

fs::path TlsTest::dir_, TlsTest::pki_;

TEST_F(TlsTest, GrpcMutualTlsAcceptsOnlyTheRightClient) {
  Server s;
  ASSERT_TRUE(s.Start(Binary("qeffd"), Log("qeffd"),
                      {"--listen", "127.0.0.1:0", "--cache-dir", cache_.string(), "--tls-cert", P("server.crt"),
                       "--tls-key", P("server.key"), "--tls-client-ca", P("ca.crt"), "--health-listen", "127.0.0.1:0"}))
      << s.Log();
  // The right CA and a client certificate it signed.
  CommandResult ok = Ctl(Cat({"list", "--server", s.address}, Mtls()));
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_TRUE(Contains(ok.out, "\"models\"")) << ok.out;

  struct Case {
    const char* what;
    std::vector<std::string> flags;
  };
  const std::vector<Case> refused = {
      {"plaintext client", {}},
      {"TLS without a client certificate", {"--tls-ca", P("ca.crt")}},
      {"a server CA that did not sign the server",
       {"--tls-ca", P("other-ca.crt"), "--tls-cert", P("client.crt"), "--tls-key", P("client.key")}},
      {"a client certificate from another CA",
       {"--tls-ca", P("ca.crt"), "--tls-cert", P("rogue.crt"), "--tls-key", P("rogue.key")}},
  };
  for (const auto& c : refused) {
    const auto t0 = Clock::now();
    CommandResult r = Ctl(Cat({"list", "--server", s.address}, c.flags));
    EXPECT_NE(r.exit_code, 0) << c.what;
    EXPECT_TRUE(Contains(r.err, "[UNAVAILABLE]")) << c.what << ": " << r.err;
    EXPECT_TRUE(Contains(r.err, "cannot reach " + s.address + ": is the server running? TLS mismatch?"))
        << c.what << ": " << r.err;
    EXPECT_LT(Seconds(t0), 15.0) << c.what << " fails cleanly, without waiting out a deadline";
  }
  // The health port is plaintext and open while the main port wants mTLS; it serves nothing else.
  EXPECT_EQ(Health(s.health, ""), HealthCheckResponse::SERVING);
  EXPECT_EQ(Health(s.health, "qeff.v1.Runner"), HealthCheckResponse::SERVING);
  EXPECT_EQ(Health(s.health, "qeff.v1.Exporter"), HealthCheckResponse::SERVING);
  CommandResult wrong_port = Ctl({"list", "--server", s.health});
  EXPECT_NE(wrong_port.exit_code, 0);
  EXPECT_TRUE(Contains(wrong_port.err, s.health + " does not serve qeff.v1.Runner: wrong address?")) << wrong_port.err;
  std::string body;
  EXPECT_EQ(Reflect(grpc::CreateChannel(s.health, grpc::InsecureChannelCredentials()), &body).error_code(),
            grpc::StatusCode::UNIMPLEMENTED)
      << "no reflection on the health port";
}

TEST_F(TlsTest, GrpcTlsWithoutClientCertificates) {
  Server s;
  ASSERT_TRUE(s.Start(Binary("qeff-runner"), Log("runner"),
                      {"--listen", "127.0.0.1:0", "--cache-dir", cache_.string(), "--tls-cert", P("server.crt"),
                       "--tls-key", P("server.key")}))
      << s.Log();
  CommandResult ok = Ctl({"list", "--server", s.address, "--tls-ca", P("ca.crt")});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  CommandResult plain = Ctl({"list", "--server", s.address});
  EXPECT_NE(plain.exit_code, 0);
  EXPECT_TRUE(Contains(plain.err, "TLS mismatch?")) << plain.err;
  CommandResult wrong_ca = Ctl({"list", "--server", s.address, "--tls-ca", P("other-ca.crt")});
  EXPECT_NE(wrong_ca.exit_code, 0);
  EXPECT_TRUE(Contains(wrong_ca.err, "[UNAVAILABLE]")) << wrong_ca.err;
  // A TLS client against a plaintext server fails the same clean way.
  Server plain_server;
  ASSERT_TRUE(plain_server.Start(Binary("qeff-runner"), Log("plain"),
                                 {"--listen", "127.0.0.1:0", "--cache-dir", cache_.string()}));
  CommandResult tls_to_plain = Ctl({"list", "--server", plain_server.address, "--tls-ca", P("ca.crt")});
  EXPECT_NE(tls_to_plain.exit_code, 0);
  EXPECT_TRUE(Contains(tls_to_plain.err, "TLS mismatch?")) << tls_to_plain.err;
}

TEST_F(TlsTest, HttpsWithMutualTlsAndTokens) {
  Server s;
  ASSERT_TRUE(s.Start(Binary("qeff-runner"), Log("runner"),
                      {"--listen", "127.0.0.1:0", "--cache-dir", cache_.string(), "--tls-cert", P("server.crt"),
                       "--tls-key", P("server.key"), "--tls-client-ca", P("ca.crt"), "--auth-token-file",
                       (dir_ / "tokens").string(), "--http-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"}))
      << s.Log();
  ASSERT_FALSE(s.http.empty());
  ASSERT_FALSE(s.metrics.empty());
  const std::string api = "https://" + s.http;
  const std::string bearer = "Authorization: Bearer token-one";
  // mTLS: the right client with the token.
  CommandResult ok = Curl(Cat(CurlMtls(), {"-H", bearer, api + "/v1/models"}));
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(ok.out, "200") << ok.err;
  // TLS refusals: no client certificate, another CA's client certificate, the wrong CA, plaintext.
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--cacert", P("ca.crt"), "-H", bearer, api + "/v1/models"},
           {"--cacert", P("ca.crt"), "--cert", P("rogue.crt"), "--key", P("rogue.key"), "-H", bearer,
            api + "/v1/models"},
           {"--cacert", P("other-ca.crt"), "--cert", P("client.crt"), "--key", P("client.key"), api + "/health"},
           {"http://" + s.http + "/health"}}) {
    CommandResult r = Curl(args);
    EXPECT_TRUE(r.exit_code != 0 || r.out == "000") << args.back() << " " << args.size() << ": " << r.out << r.err;
  }
  // Tokens: missing and wrong get the same 401; /health needs none; /metrics needs one.
  CommandResult none = Curl(Cat(CurlMtls(), {api + "/v1/models"}));
  CommandResult wrong = Curl(Cat(CurlMtls(), {"-H", "Authorization: Bearer token-three", api + "/v1/models"}));
  CommandResult not_bearer = Curl(Cat(CurlMtls(), {"-H", "Authorization: Basic dG9rZW4tb25l", api + "/v1/models"}));
  EXPECT_EQ(none.out, "401");
  EXPECT_EQ(wrong.out, "401");
  EXPECT_EQ(not_bearer.out, "401");
  EXPECT_EQ(none.err, wrong.err) << "a missing and a wrong token get the same answer";
  EXPECT_EQ(none.err, not_bearer.err);
  EXPECT_TRUE(Contains(none.err, "authentication required")) << none.err;
  CommandResult second = Curl(Cat(CurlMtls(), {"-H", "Authorization: bearer token-two", api + "/v1/models"}));
  EXPECT_EQ(second.out, "200") << "every token of the file, scheme case-insensitive: " << second.err;
  EXPECT_EQ(Curl(Cat(CurlMtls(), {api + "/health"})).out, "200");
  EXPECT_EQ(Curl(Cat(CurlMtls(), {api + "/metrics"})).out, "401");
  EXPECT_EQ(Curl(Cat(CurlMtls(), {"-H", bearer, api + "/metrics"})).out, "200");
  EXPECT_EQ(Curl(Cat(CurlMtls(), {"https://" + s.metrics + "/metrics"})).out, "401");
  CommandResult m = Curl(Cat(CurlMtls(), {"-H", bearer, "https://" + s.metrics + "/metrics"}));
  EXPECT_EQ(m.out, "200");
  EXPECT_TRUE(Contains(m.err, "qeff:")) << m.err.substr(0, 300);

  // gRPC on the same server: mTLS plus a token.
  CommandResult grpc_none = Ctl(Cat({"list", "--server", s.address}, Mtls()));
  EXPECT_NE(grpc_none.exit_code, 0);
  EXPECT_TRUE(Contains(grpc_none.err, "the server wants a token: --token-file or QEFF_TOKEN [UNAUTHENTICATED]"))
      << grpc_none.err;
  CommandResult grpc_ok =
      Ctl(Cat({"list", "--server", s.address, "--token-file", (dir_ / "token-two").string()}, Mtls()));
  EXPECT_EQ(grpc_ok.exit_code, 0) << grpc_ok.err;
}

TEST_F(TlsTest, TokensOnGrpc) {
  Server s;
  ASSERT_TRUE(s.Start(Binary("qeffd"), Log("qeffd"),
                      {"--listen", "127.0.0.1:0", "--cache-dir", cache_.string(), "--auth-token-file",
                       (dir_ / "tokens").string(), "--http-listen", "127.0.0.1:0", "--health-listen", "127.0.0.1:0"}))
      << s.Log();
  CommandResult none = Ctl({"list", "--server", s.address});
  EXPECT_NE(none.exit_code, 0);
  EXPECT_TRUE(Contains(none.err, "the server wants a token: --token-file or QEFF_TOKEN [UNAUTHENTICATED]")) << none.err;
  CommandResult wrong = Ctl({"list", "--server", s.address, "--token-file", (dir_ / "wrong-token").string()});
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_TRUE(Contains(wrong.err, "[UNAUTHENTICATED]")) << wrong.err;
  // Export (a streaming call) is refused before any work.
  CommandResult exp = Ctl({"export", "--server", s.address, "--model", kGpt2.string()});
  EXPECT_TRUE(Contains(exp.err, "[UNAUTHENTICATED]")) << exp.err;
  EXPECT_FALSE(fs::exists(cache_ / "exports") && !fs::is_empty(cache_ / "exports"));

  // The server's own answer is the same for a missing and a wrong token.
  auto channel = grpc::CreateChannel(s.address, grpc::InsecureChannelCredentials());
  auto stub = qeff::v1::Runner::NewStub(channel);
  std::vector<std::string> messages;
  for (const char* header : {"", "Bearer token-three", "Bearer ", "token-one", "Bearer token-one"}) {
    grpc::ClientContext ctx;
    if (*header != '\0') ctx.AddMetadata("authorization", header);
    qeff::v1::ListResponse resp;
    grpc::Status st = stub->List(&ctx, qeff::v1::ListRequest(), &resp);
    if (std::string(header) == "Bearer token-one") {
      EXPECT_TRUE(st.ok()) << st.error_message();
    } else {
      EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << header;
      messages.push_back(st.error_message());
    }
  }
  for (const auto& m : messages) EXPECT_EQ(m, messages.front());

  // Right token: from the file, from QEFF_TOKEN, and the flag wins over the environment.
  CommandResult file = Ctl({"list", "--server", s.address, "--token-file", (dir_ / "token-two").string()});
  EXPECT_EQ(file.exit_code, 0) << file.err;
  CommandResult env = Ctl({"list", "--server", s.address}, {"QEFF_TOKEN=token-one"});
  EXPECT_EQ(env.exit_code, 0) << env.err;
  CommandResult env_wrong = Ctl({"list", "--server", s.address}, {"QEFF_TOKEN=nope"});
  EXPECT_TRUE(Contains(env_wrong.err, "did not accept the token")) << env_wrong.err;
  CommandResult flag_wins =
      Ctl({"list", "--server", s.address, "--token-file", (dir_ / "token-two").string()}, {"QEFF_TOKEN=nope"});
  EXPECT_EQ(flag_wins.exit_code, 0) << flag_wins.err;
  CommandResult infer = Ctl({"infer", "--server", s.address, "--model", kGpt2.string(), "--input-ids", "15496,995",
                             "--max-new-tokens", "4", "--prefill-seq-len", "8", "--ctx-len", "64", "--json"},
                            {"QEFF_TOKEN=token-two"});
  EXPECT_EQ(infer.exit_code, 0) << infer.err;

  // Health stays open without a token, on the main port and the health port.
  EXPECT_EQ(Health(s.address, ""), HealthCheckResponse::SERVING);
  EXPECT_EQ(Health(s.address, "qeff.v1.Runner"), HealthCheckResponse::SERVING);
  EXPECT_EQ(Health(s.health, "qeff.v1.Compiler"), HealthCheckResponse::SERVING);
  // HTTP over plaintext loopback with tokens.
  EXPECT_EQ(Curl({"http://" + s.http + "/health"}).out, "200");
  EXPECT_EQ(Curl({"http://" + s.http + "/v1/models"}).out, "401");
  EXPECT_EQ(Curl({"-H", "Authorization: Bearer token-one", "http://" + s.http + "/v1/models"}).out, "200");
  CommandResult post = Curl({"-H", "Content-Type: application/json", "-d", R"({"model":"x","prompt":"hi"})",
                             "http://" + s.http + "/v1/completions"});
  EXPECT_EQ(post.out, "401");
}

TEST_F(TlsTest, NoReflectionAndOneSocketPerListen) {
  Server on, off;
  ASSERT_TRUE(
      on.Start(Binary("qeff-compiler"), Log("on"), {"--listen", "127.0.0.1:0", "--cache-dir", cache_.string()}));
  ASSERT_TRUE(off.Start(Binary("qeff-compiler"), Log("off"),
                        {"--listen", "127.0.0.1:0", "--cache-dir", cache_.string(), "--no-reflection"}));
  std::string body;
  grpc::Status s_on = Reflect(grpc::CreateChannel(on.address, grpc::InsecureChannelCredentials()), &body);
  EXPECT_TRUE(s_on.ok()) << s_on.error_message();
  EXPECT_TRUE(Contains(body, "qeff.v1.Compiler")) << body;
  body.clear();
  EXPECT_EQ(Reflect(grpc::CreateChannel(off.address, grpc::InsecureChannelCredentials()), &body).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(Health(off.address, "qeff.v1.Compiler"), HealthCheckResponse::SERVING);

  // --listen HOST:0 opens exactly the port it prints; --health-listen adds exactly one more.
  const int printed = std::stoi(on.address.substr(on.address.rfind(':') + 1));
  EXPECT_EQ(ListeningPorts(on.pid()), std::set<int>{printed});
  Server h;
  ASSERT_TRUE(h.Start(Binary("qeff-compiler"), Log("h"),
                      {"--listen", "127.0.0.1:0", "--cache-dir", cache_.string(), "--health-listen", "127.0.0.1:0"}));
  const int main_port = std::stoi(h.address.substr(h.address.rfind(':') + 1));
  const int health_port = std::stoi(h.health.substr(h.health.rfind(':') + 1));
  EXPECT_EQ(ListeningPorts(h.pid()), (std::set<int>{main_port, health_port}));
  // A port in use is an error, not a second listener on the same port.
  Server dup;
  EXPECT_FALSE(
      dup.Start(Binary("qeff-compiler"), Log("dup"), {"--listen", on.address, "--cache-dir", cache_.string()}));
}

TEST_F(TlsTest, BadFlagsFailAtStartWithExitCode2) {
  fs::create_directories(cache_ / "empty");
  std::ofstream(cache_ / "empty-tokens") << "# nothing\n\n";
  std::ofstream(cache_ / "garbage.pem") << "not a certificate\n";
  struct Case {
    std::vector<std::string> flags;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--tls-cert", P("server.crt")}, "--tls-cert and --tls-key go together"},
      {{"--tls-key", P("server.key")}, "--tls-cert and --tls-key go together"},
      {{"--tls-cert", (cache_ / "missing.crt").string(), "--tls-key", P("server.key")}, "cannot read"},
      {{"--tls-cert", (cache_ / "garbage.pem").string(), "--tls-key", P("server.key")}, "no PEM certificate"},
      {{"--tls-cert", P("server.crt"), "--tls-key", (cache_ / "garbage.pem").string()},
       "no unencrypted PEM private key"},
      {{"--tls-cert", P("server.crt"), "--tls-key", P("client.key")}, "is not the private key of the certificate"},
      {{"--tls-client-ca", P("ca.crt")}, "--tls-client-ca needs --tls-cert"},
      {{"--tls-cert", P("server.crt"), "--tls-key", P("server.key"), "--tls-client-ca",
        (cache_ / "garbage.pem").string()},
       "no PEM CA certificate"},
      {{"--auth-token-file", (cache_ / "empty-tokens").string()}, "no tokens"},
      {{"--auth-token-file", (cache_ / "missing").string()}, "cannot read"},
      {{"--auth-token-file", (dir_ / "tokens").string(), "--listen", "0.0.0.0:0"}, "clear text"},
      {{"--health-listen", "127.0.0.1:99999"}, "must be HOST:PORT"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> argv = {Binary("qeff-runner"), "--cache-dir", cache_.string()};
    argv.insert(argv.end(), c.flags.begin(), c.flags.end());
    CommandResult r = RunCommand(argv);
    EXPECT_EQ(r.exit_code, 2) << c.flags.front() << ": " << r.err;
    EXPECT_TRUE(Contains(r.err, c.message)) << c.flags.front() << ": " << r.err;
    EXPECT_TRUE(r.out.empty()) << "nothing listened: " << r.out;
  }
  // The default bind is loopback.
  CommandResult help = RunCommand({Binary("qeffd"), "--help"});
  EXPECT_TRUE(Contains(help.out, "127.0.0.1:50051")) << help.out;
}

// qeff.v1.Runner is NOT_SERVING on every health listener while --serve models load, SERVING once
// they are; the process as a whole ("") is SERVING throughout.
TEST_F(TlsTest, HealthListenReportsRunnerReadinessWhileServeLoads) {
  const fs::path model = cache_ / "random-model";
  CommandResult gen =
      RunCommand({Binary("qeff-make-random-model"), "--out", model.string(), "--n-layer", "8", "--n-embd", "1024",
                  "--n-head", "16", "--vocab", "8192", "--n-positions", "128", "--tokenizer-from", kGpt2.string()});
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  Server s;
  const auto t0 = Clock::now();
  ASSERT_TRUE(
      s.Start(Binary("qeff-runner"), Log("runner"),
              {"--listen", "127.0.0.1:0", "--cache-dir", cache_.string(), "--health-listen", "127.0.0.1:0",
               "--http-listen", "127.0.0.1:0", "--serve", model.string() + ",id=big,ctx_len=128,prefill_seq_len=16"}))
      << s.Log();
  ASSERT_FALSE(s.health.empty());
  EXPECT_EQ(Health(s.health, "qeff.v1.Runner"), HealthCheckResponse::NOT_SERVING) << Seconds(t0) << " s";
  EXPECT_EQ(Health(s.address, "qeff.v1.Runner"), HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(Health(s.health, ""), HealthCheckResponse::SERVING) << "alive while loading";
  EXPECT_EQ(Curl({"http://" + s.http + "/health"}).out, "503");
  HealthCheckResponse::ServingStatus st = HealthCheckResponse::NOT_SERVING;
  while (Seconds(t0) < 600 && (st = Health(s.health, "qeff.v1.Runner")) == HealthCheckResponse::NOT_SERVING) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_EQ(st, HealthCheckResponse::SERVING) << s.Log();
  EXPECT_EQ(Health(s.address, "qeff.v1.Runner"), HealthCheckResponse::SERVING);
  EXPECT_EQ(Curl({"http://" + s.http + "/health"}).out, "200");
  CommandResult list = Ctl({"list", "--server", s.address, "--json"});
  EXPECT_TRUE(Contains(list.out, "\"big\"")) << list.out << list.err;
  std::printf("--serve load took %.1f s\n", Seconds(t0));
  // SIGTERM while a generation runs: the server drains it, reporting NOT_SERVING meanwhile.
  CommandResult gen_result;
  std::thread generating([&] {
    gen_result = Ctl({"generate", "--server", s.address, "--model-id", "big", "--input-ids", "1,2", "--max-new-tokens",
                      "120", "--json"});
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ::kill(s.pid(), SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(Health(s.health, "qeff.v1.Runner"), HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(Health(s.health, ""), HealthCheckResponse::NOT_SERVING);
  generating.join();
  const int status = s.Stop(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << s.Log();
}

TEST_F(TlsTest, QeffctlDeadlinesAndPromptExit) {
  Server s;
  ASSERT_TRUE(s.Start(Binary("qeffd"), Log("qeffd"), {"--listen", "127.0.0.1:0", "--cache-dir", cache_.string()}))
      << s.Log();
  // A deadline far shorter than the work: DEADLINE_EXCEEDED, quickly.
  const fs::path model = cache_ / "random-model";
  CommandResult gen =
      RunCommand({Binary("qeff-make-random-model"), "--out", model.string(), "--n-layer", "4", "--n-embd", "512",
                  "--n-head", "8", "--vocab", "8192", "--n-positions", "128", "--tokenizer-from", kGpt2.string()});
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  auto t0 = Clock::now();
  CommandResult late = Ctl({"export", "--server", s.address, "--model", model.string(), "--timeout", "0.05"});
  const double late_s = Seconds(t0);
  EXPECT_NE(late.exit_code, 0);
  EXPECT_TRUE(Contains(late.err, "[DEADLINE_EXCEEDED]")) << late.err;
  EXPECT_TRUE(Contains(late.err, "did not finish within 0.05 s")) << late.err;
  EXPECT_LT(late_s, 5.0);
  CommandResult bad = Ctl({"list", "--server", s.address, "--timeout", "-1"});
  EXPECT_NE(bad.exit_code, 0);

  // infer exits promptly, every time (the result printed, no hang in gRPC's teardown).
  const std::vector<std::string> infer = {"infer",
                                          "--server",
                                          s.address,
                                          "--model",
                                          kGpt2.string(),
                                          "--input-ids",
                                          "15496,995",
                                          "--max-new-tokens",
                                          "8",
                                          "--prefill-seq-len",
                                          "8",
                                          "--ctx-len",
                                          "64",
                                          "--json"};
  ASSERT_EQ(Ctl(infer).exit_code, 0);  // warm: export + compile
  double worst = 0;
  for (int i = 0; i < 20; ++i) {
    t0 = Clock::now();
    CommandResult r = Ctl(infer);
    const double took = Seconds(t0);
    worst = std::max(worst, took);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r.out;
    EXPECT_EQ(j["generated_token_ids"].size(), 8u);
    EXPECT_LT(took, 10.0) << "run " << i;
  }
  // Several streams on one channel (--prompts-file) exit promptly too.
  std::ofstream(cache_ / "prompts.jsonl")
      << "{\"prompt\": \"Hello\"}\n{\"input_ids\": [15496, 995]}\n{\"prompt\": \"a b\"}\n";
  for (int i = 0; i < 5; ++i) {
    t0 = Clock::now();
    CommandResult r = Ctl({"generate", "--server", s.address, "--model-id", "gpt2-missing", "--prompts-file",
                           (cache_ / "prompts.jsonl").string(), "--max-new-tokens", "4", "--json"});
    worst = std::max(worst, Seconds(t0));
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 3) << r.out << r.err;
  }
  std::printf("qeffctl: slowest of 25 runs %.2f s\n", worst);
}

}  // namespace
}  // namespace qeff::testing
