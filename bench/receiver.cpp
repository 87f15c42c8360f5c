// pgcourier-bench-receiver: the HTTP receiver of the benchmark scenarios that
// nginx cannot play (issue 6): a fixed response latency, a status mix,
// dropped connections, and a timestamp per arrival.
//
//   pgcourier-bench-receiver --port P [--latency-ms 50] [--fail-ratio 0.5]
//       [--fail-status 500] [--drop-ratio 0.0] [--arrivals FILE] [--seed N]
//
// One thread, epoll, HTTP/1.1 keep-alive, no third-party library. Every
// request (any method, any path; Content-Length bodies, no chunked uploads) is
// answered after --latency-ms with 200, or with --fail-status for a
// --fail-ratio share of requests; a --drop-ratio share of requests instead
// closes the connection without an answer. With --arrivals, each request
// appends "<arrival unix time in microseconds> <webhook-id header>" to FILE
// (buffered; flushed every second and on SIGTERM/SIGINT).
//
// GET /stats answers at once with JSON counts {"requests":..,"ok":..,
// "failed":..,"dropped":..,"open":..} and is not counted itself.
//
// Latency is the same for every request, so due answers form a FIFO queue in
// arrival order; the loop waits for the head's due time.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  int port = 0;
  int latency_ms = 0;
  double fail_ratio = 0.0;
  int fail_status = 500;
  double drop_ratio = 0.0;
  std::string arrivals_path;
  unsigned seed = 1;
};

struct Connection {
  int fd = -1;
  std::string in;      // bytes read, not yet parsed
  std::string out;     // bytes to write
  unsigned generation = 0;
  bool continue_sent = false;  // "100 Continue" already sent for the request being read
};

struct PendingAnswer {
  Clock::time_point due;
  int fd;
  unsigned generation;  // the connection may have closed and the fd reused
  int status;
};

volatile sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

[[noreturn]] void Die(const char* what) {
  const std::string reason = std::generic_category().message(errno);
  std::fprintf(stderr, "pgcourier-bench-receiver: %s: %s\n", what, reason.c_str());
  std::exit(1);  // NOLINT(concurrency-mt-unsafe): a single-threaded program
}

bool ParseOptions(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "missing value for %s\n", argv[i]);
        std::exit(2);  // NOLINT(concurrency-mt-unsafe): a single-threaded program
      }
      return argv[++i];
    };
    if (a == "--port") o.port = std::atoi(value());
    else if (a == "--latency-ms") o.latency_ms = std::atoi(value());
    else if (a == "--fail-ratio") o.fail_ratio = std::atof(value());
    else if (a == "--fail-status") o.fail_status = std::atoi(value());
    else if (a == "--drop-ratio") o.drop_ratio = std::atof(value());
    else if (a == "--arrivals") o.arrivals_path = value();
    else if (a == "--seed") o.seed = static_cast<unsigned>(std::atol(value()));
    else return false;
  }
  return o.port > 0 && o.port < 65536 && o.latency_ms >= 0 && o.fail_ratio >= 0 && o.fail_ratio <= 1 &&
         o.drop_ratio >= 0 && o.drop_ratio <= 1 && o.fail_status >= 100 && o.fail_status <= 599;
}

// Case-insensitive header lookup in a request head ("Name: value\r\n" lines).
std::string_view HeaderValue(std::string_view head, std::string_view name) {
  size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos && pos + 2 < head.size()) {
    size_t start = pos + 2;
    size_t end = head.find("\r\n", start);
    if (end == std::string_view::npos) end = head.size();
    std::string_view line = head.substr(start, end - start);
    if (line.size() > name.size() && line[name.size()] == ':' &&
        strncasecmp(line.data(), name.data(), name.size()) == 0) {
      std::string_view v = line.substr(name.size() + 1);
      while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      return v;
    }
    pos = end;
  }
  return {};
}

const char* Reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

class Receiver {
 public:
  explicit Receiver(Options o) : o_(std::move(o)), rng_(o_.seed) {}

  int Run() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) Die("socket");
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(o_.port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) Die("bind");
    if (listen(listen_fd_, 4096) != 0) Die("listen");
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) Die("epoll_create1");
    Watch(listen_fd_, EPOLLIN);
    if (!o_.arrivals_path.empty()) {
      arrivals_ = std::fopen(o_.arrivals_path.c_str(), "w");
      if (arrivals_ == nullptr) Die(o_.arrivals_path.c_str());
    }
    auto last_flush = Clock::now();
    epoll_event events[256];
    while (!g_stop) {
      int n = epoll_wait(epoll_fd_, events, 256, TimeoutMs());
      if (n < 0 && errno != EINTR) Die("epoll_wait");
      for (int i = 0; i < n; ++i) {
        int fd = events[i].data.fd;
        if (fd == listen_fd_) {
          Accept();
          continue;
        }
        auto it = conns_.find(fd);
        if (it == conns_.end()) continue;
        if (events[i].events & (EPOLLERR | EPOLLHUP)) {
          Close(it->second);
          continue;
        }
        if (events[i].events & EPOLLOUT) Flush(it->second);
        if ((events[i].events & EPOLLIN) && conns_.count(fd) != 0) Read(it->second);
      }
      AnswerDue();
      if (arrivals_ != nullptr && Clock::now() - last_flush > std::chrono::seconds(1)) {
        std::fflush(arrivals_);
        last_flush = Clock::now();
      }
    }
    if (arrivals_ != nullptr) std::fclose(arrivals_);
    std::fprintf(stderr, "pgcourier-bench-receiver: %llu requests, %llu ok, %llu failed, %llu dropped\n",
                 requests_, ok_, failed_, dropped_);
    return 0;
  }

 private:
  void Watch(int fd, uint32_t events, int op = EPOLL_CTL_ADD) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    if (epoll_ctl(epoll_fd_, op, fd, &ev) != 0) Die("epoll_ctl");
  }

  int TimeoutMs() const {
    if (pending_.empty()) return 1000;
    auto wait = std::chrono::duration_cast<std::chrono::microseconds>(pending_.front().due - Clock::now()).count();
    if (wait <= 0) return 0;
    return static_cast<int>((wait + 999) / 1000);
  }

  void Accept() {
    for (;;) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
        if (errno == EMFILE || errno == ENFILE) return;  // try again on the next event
        Die("accept4");
      }
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      Connection& c = conns_[fd];
      c.fd = fd;
      c.generation = ++generation_;
      Watch(fd, EPOLLIN);
    }
  }

  void Close(Connection& c) {
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c.fd, nullptr);
    close(c.fd);
    conns_.erase(c.fd);
  }

  void Read(Connection& c) {
    char buf[16384];
    for (;;) {
      ssize_t n = read(c.fd, buf, sizeof buf);
      if (n > 0) {
        c.in.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        Close(c);
        return;
      }
      if (errno == EINTR) continue;
      break;
    }
    Parse(c);
  }

  // Takes every complete request off c.in.
  void Parse(Connection& c) {
    for (;;) {
      size_t head_end = c.in.find("\r\n\r\n");
      if (head_end == std::string::npos) return;
      std::string_view head(c.in.data(), head_end);
      std::string_view length = HeaderValue(head, "content-length");
      size_t body = length.empty() ? 0 : std::strtoull(std::string(length).c_str(), nullptr, 10);
      size_t total = head_end + 4 + body;
      if (c.in.size() < total) {
        if (!c.continue_sent && !HeaderValue(head, "expect").empty()) {
          c.continue_sent = true;
          c.out += "HTTP/1.1 100 Continue\r\n\r\n";
          Flush(c);
        }
        return;
      }
      c.continue_sent = false;
      bool stats = head.substr(0, 11) == "GET /stats ";
      if (stats) {
        char json[256];
        int len = std::snprintf(json, sizeof json,
                                R"({"requests":%llu,"ok":%llu,"failed":%llu,"dropped":%llu,"open":%zu})",
                                requests_, ok_, failed_, dropped_, conns_.size());
        c.out += "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(len) +
                 "\r\n\r\n" + std::string(json, static_cast<size_t>(len));
        c.in.erase(0, total);
        Flush(c);
        return;
      }
      ++requests_;
      if (arrivals_ != nullptr) {
        auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
        std::string_view id = HeaderValue(head, "webhook-id");
        std::fprintf(arrivals_, "%lld %.*s\n", static_cast<long long>(us), static_cast<int>(id.size()), id.data());
      }
      c.in.erase(0, total);
      double roll = unit_(rng_);
      if (roll < o_.drop_ratio) {
        ++dropped_;
        Close(c);
        return;
      }
      int status = roll < o_.drop_ratio + o_.fail_ratio * (1 - o_.drop_ratio) ? o_.fail_status : 200;
      pending_.push_back({Clock::now() + std::chrono::milliseconds(o_.latency_ms), c.fd, c.generation, status});
    }
  }

  void AnswerDue() {
    auto now = Clock::now();
    while (!pending_.empty() && pending_.front().due <= now) {
      PendingAnswer a = pending_.front();
      pending_.pop_front();
      auto it = conns_.find(a.fd);
      if (it == conns_.end() || it->second.generation != a.generation) continue;  // client went away
      Connection& c = it->second;
      (a.status == 200 ? ok_ : failed_) += 1;
      c.out += "HTTP/1.1 ";
      c.out += std::to_string(a.status);
      c.out += ' ';
      c.out += Reason(a.status);
      c.out += "\r\nContent-Length: 0\r\n\r\n";
      Flush(c);
    }
  }

  void Flush(Connection& c) {
    while (!c.out.empty()) {
      ssize_t n = write(c.fd, c.out.data(), c.out.size());
      if (n > 0) {
        c.out.erase(0, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        Watch(c.fd, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
        return;
      }
      Close(c);
      return;
    }
    Watch(c.fd, EPOLLIN, EPOLL_CTL_MOD);
  }

  Options o_;
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> unit_{0.0, 1.0};
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  unsigned generation_ = 0;
  std::unordered_map<int, Connection> conns_;
  std::deque<PendingAnswer> pending_;
  std::FILE* arrivals_ = nullptr;
  unsigned long long requests_ = 0, ok_ = 0, failed_ = 0, dropped_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!ParseOptions(argc, argv, o)) {
    std::fprintf(stderr,
                 "usage: pgcourier-bench-receiver --port P [--latency-ms MS] [--fail-ratio R] [--fail-status S]\n"
                 "                                [--drop-ratio R] [--arrivals FILE] [--seed N]\n");
    return 2;
  }
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return Receiver(std::move(o)).Run();
}
