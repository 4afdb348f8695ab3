// shmfdctl against a live broker and real clients: its JSON must say what the test set up.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "shmfd/consumer.hpp"
#include "shmfd/producer.hpp"
#include "shmfd/service.hpp"
#include "support/broker_harness.hpp"
#include "support/channels.hpp"
#include "support/stamped_slots.hpp"

namespace shmfd {
namespace {

using nlohmann::json;

struct CtlRun {
  int status = -1;
  std::string out;  // stdout and stderr
};

// Runs shmfdctl with `args`, optionally as `uid` (dropped in the child before exec).
CtlRun shmfdctl(const std::vector<std::string>& args, uid_t uid = 0) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return {};
  // Built before fork: the child of a multi-threaded process may only make async-signal-safe
  // calls, and allocating is not one.
  std::vector<std::string> argv_s{SHMFDCTL_BIN};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::dup2(out[1], 2);
    const int null = ::open("/dev/null", O_RDONLY);  // nothing to answer a question with
    if (null >= 0) ::dup2(null, 0);
    if (uid != 0 && (::setgid(uid) != 0 || ::setuid(uid) != 0)) ::_exit(126);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  CtlRun r;
  std::array<char, 4096> buf{};
  ssize_t n;
  while ((n = ::read(out[0], buf.data(), buf.size())) > 0)
    r.out.append(buf.data(), static_cast<std::size_t>(n));
  ::close(out[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

json json_of(const CtlRun& r) {
  EXPECT_EQ(r.status, 0) << r.out;
  return json::parse(r.out, nullptr, false);
}

TEST(ShmfdctlTest, JsonDescribesTopicsClientsAndPoolsAsSetUp) {
  testing::InProcessBroker broker;
  auto consumer = Consumer::connect(broker.path(), "ctl-consumer");
  ASSERT_TRUE(consumer);
  ASSERT_TRUE(consumer->subscribe("ctl/cam", 4));
  auto producer = Producer::connect(broker.path(), "ctl-producer");
  ASSERT_TRUE(producer);
  ASSERT_TRUE(producer->advertise("ctl/cam", LayoutKind::blob, Guarantee::pool));
  auto pool = producer->create_pool("ctl/cam", 8192, 4);
  ASSERT_TRUE(pool) << pool.error().message();
  for (std::uint64_t seq = 1; seq <= 3; ++seq) {
    auto slot = producer->acquire(*pool);
    ASSERT_TRUE(slot);
    testing::stamp(slot->bytes, seq);
    ASSERT_TRUE(producer->publish("ctl/cam", *slot, blob_layout(8192)));
  }
  // Hold two frames; release the third.
  std::vector<Frame> held;
  for (int i = 0; i < 3; ++i) {
    auto event = consumer->receive();
    ASSERT_TRUE(event && std::holds_alternative<Frame>(*event));
    if (i < 2) held.push_back(std::move(std::get<Frame>(*event)));
  }
  ASSERT_TRUE(producer->advertise("ctl/other", LayoutKind::image));  // a second topic, and a sync

  const json topics = json_of(shmfdctl({"--socket", broker.path(), "--json", "topics"}));
  ASSERT_TRUE(topics.is_array()) << topics;
  ASSERT_EQ(topics.size(), 2U);
  const json& cam = topics[0]["name"] == "ctl/cam" ? topics[0] : topics[1];
  EXPECT_EQ(cam["kind"], "blob");
  EXPECT_EQ(cam["guarantee"], "pool");
  EXPECT_EQ(cam["frames"], 3);
  EXPECT_EQ(cam["bytes"], 3 * 8192);
  ASSERT_EQ(cam["subscribers"].size(), 1U);
  EXPECT_EQ(cam["subscribers"][0]["delivered"], 3);
  EXPECT_EQ(cam["subscribers"][0]["dropped"], 0);
  EXPECT_EQ(cam["subscribers"][0]["queue_depth"], 4);

  const json clients = json_of(shmfdctl({"--socket", broker.path(), "--json", "clients"}));
  std::map<std::string, json> by_name;
  for (const auto& c : clients) by_name[c["name"]] = c;
  ASSERT_EQ(by_name.count("ctl-consumer"), 1U) << clients;
  ASSERT_EQ(by_name.count("ctl-producer"), 1U);
  EXPECT_EQ(by_name["ctl-consumer"]["pid"], ::getpid());
  EXPECT_EQ(by_name["ctl-consumer"]["role"], "consumer");
  EXPECT_EQ(by_name["ctl-producer"]["role"], "producer");
  // The program's whole name, not the 15 characters of its comm ("shmfd_broker_te").
  EXPECT_EQ(by_name["ctl-consumer"]["command"], "shmfd_broker_tests");
  EXPECT_EQ(by_name["ctl-consumer"]["bytes_pinned"], 2 * 8192);  // the two held slots
  EXPECT_EQ(cam["producer"], by_name["ctl-producer"]["id"]);

  const json pools = json_of(shmfdctl({"--socket", broker.path(), "--json", "pools"}));
  ASSERT_EQ(pools.size(), 1U) << pools;
  EXPECT_EQ(pools[0]["topic"], "ctl/cam");
  EXPECT_EQ(pools[0]["slot_count"], 4);
  EXPECT_EQ(pools[0]["slot_size"], 8192);
  EXPECT_EQ(pools[0]["slots_busy"], 2);
  ASSERT_EQ(pools[0]["holders"].size(), 1U);
  EXPECT_EQ(pools[0]["holders"][0]["client"], by_name["ctl-consumer"]["id"]);
  EXPECT_EQ(pools[0]["holders"][0]["slots"], 2);

  const json status = json_of(shmfdctl({"--socket", broker.path(), "--json", "status"}));
  EXPECT_EQ(status["topics"], 2);
  EXPECT_EQ(status["pools"], 1);
  EXPECT_EQ(status["broker_pid"], ::getpid());

  // The table forms print the same things for people.
  const CtlRun table = shmfdctl({"--socket", broker.path(), "pools"});
  EXPECT_EQ(table.status, 0);
  EXPECT_NE(table.out.find("ctl/cam"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("8.0 KiB"), std::string::npos) << table.out;

  // top refreshes (twice here, without a terminal) with a rate column per topic.
  const CtlRun top =
      shmfdctl({"--socket", broker.path(), "top", "--count", "2", "--interval", "0.1"});
  EXPECT_EQ(top.status, 0) << top.out;
  EXPECT_NE(top.out.find("FRAMES/S"), std::string::npos) << top.out;
  EXPECT_NE(top.out.find("ctl/cam"), std::string::npos) << top.out;
}

// Pool frames on channels pass the broker by; the counters still show every one of them, and
// their bytes, in the tables and in JSON alike (they are counted from the channels' pages).
TEST(ShmfdctlTest, ServicesShowTheirServersCallsInFlightAndLatency) {
  testing::InProcessBroker broker;
  auto first = Server::connect(broker.path(), "first-worker");
  auto second = Server::connect(broker.path(), "second-worker");
  ASSERT_TRUE(first && second);
  ASSERT_TRUE(first->offer("ctl/blur", 2));
  ASSERT_TRUE(second->offer("ctl/blur", 2));
  auto caller = Caller::connect(broker.path(), "ctl-caller");
  ASSERT_TRUE(caller);
  // Three calls answered (by the servers in turn), then one left in flight at `second`.
  for (int i = 0; i < 3; ++i) {
    auto id = caller->start("ctl/blur");
    ASSERT_TRUE(id);
    Server& server = i % 2 == 0 ? *first : *second;
    auto event = server.receive_for(std::chrono::seconds(5));
    ASSERT_TRUE(event && *event && std::holds_alternative<Request>(**event));
    ASSERT_TRUE(server.respond(std::get<Request>(**event)));
    ASSERT_TRUE(caller->next(*id));
  }
  auto pending = caller->start("ctl/blur");
  ASSERT_TRUE(pending);
  auto event = second->receive_for(std::chrono::seconds(5));  // `second`'s turn
  ASSERT_TRUE(event && *event);

  const json services = json_of(shmfdctl({"--socket", broker.path(), "--json", "services"}));
  ASSERT_EQ(services.size(), 1u) << services.dump(2);
  const json& blur = services[0];
  EXPECT_EQ(blur["name"], "ctl/blur");
  EXPECT_EQ(blur["calls"], 4);
  EXPECT_EQ(blur["failed"], 0);
  EXPECT_EQ(blur["answered"], 3);
  EXPECT_GT(blur["latency_p50_us"].get<std::uint64_t>(), 0u);
  EXPECT_LE(blur["latency_p50_us"].get<std::uint64_t>(),
            blur["latency_max_us"].get<std::uint64_t>());
  ASSERT_EQ(blur["servers"].size(), 2u);
  EXPECT_EQ(blur["servers"][0]["calls"], 2);
  EXPECT_EQ(blur["servers"][0]["in_flight"], 0);
  EXPECT_EQ(blur["servers"][1]["calls"], 2);
  EXPECT_EQ(blur["servers"][1]["in_flight"], 1);
  EXPECT_EQ(blur["servers"][1]["max_in_flight"], 2);

  const json clients = json_of(shmfdctl({"--socket", broker.path(), "--json", "clients"}));
  std::map<std::string, std::string> roles;
  for (const json& c : clients) roles[c["name"]] = c["role"];
  EXPECT_EQ(roles["first-worker"], "server");
  EXPECT_EQ(roles["ctl-caller"], "idle");

  const CtlRun table = shmfdctl({"--socket", broker.path(), "services"});
  EXPECT_EQ(table.status, 0) << table.out;
  EXPECT_NE(table.out.find("ctl/blur"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("1/2"), std::string::npos) << table.out;  // in flight / max
  EXPECT_NE(table.out.find("P99"), std::string::npos) << table.out;
}

// A pool for calls shows as "(calls)", with whoever holds its slots: the server reading a
// request in place.
TEST(ShmfdctlTest, PoolsForCallsShowTheirOwnerAndWhoHoldsTheirSlots) {
  testing::InProcessBroker broker;
  auto server = Server::connect(broker.path(), "pool-worker");
  ASSERT_TRUE(server);
  ASSERT_TRUE(server->offer("ctl/pooled"));
  auto caller = Caller::connect(broker.path(), "pool-caller");
  ASSERT_TRUE(caller);
  auto pool = caller->create_pool(4096, 2);
  ASSERT_TRUE(pool);
  auto slot = caller->acquire(*pool);
  ASSERT_TRUE(slot);
  ASSERT_TRUE(caller->start("ctl/pooled", *slot, blob_layout(64)));
  auto event = server->receive_for(std::chrono::seconds(5));
  ASSERT_TRUE(event && *event && std::holds_alternative<Request>(**event));

  const json pools = json_of(shmfdctl({"--socket", broker.path(), "--json", "pools"}));
  ASSERT_EQ(pools.size(), 1u) << pools.dump(2);
  EXPECT_EQ(pools[0]["topic"], "");
  EXPECT_EQ(pools[0]["slot_count"], 2);
  EXPECT_EQ(pools[0]["slots_busy"], 1);
  ASSERT_EQ(pools[0]["holders"].size(), 1u) << pools.dump(2);
  EXPECT_EQ(pools[0]["holders"][0]["slots"], 1);
  const json clients = json_of(shmfdctl({"--socket", broker.path(), "--json", "clients"}));
  for (const json& c : clients) {
    if (c["name"] == "pool-worker") {
      EXPECT_EQ(pools[0]["holders"][0]["client"], c["id"]);
      EXPECT_EQ(c["bytes_pinned"], 4096) << "the slot the server reads is pinned by it";
    }
  }
  const CtlRun table = shmfdctl({"--socket", broker.path(), "pools"});
  EXPECT_EQ(table.status, 0) << table.out;
  EXPECT_NE(table.out.find("(calls)"), std::string::npos) << table.out;
}

TEST(ShmfdctlTest, CountersShowFramesThatWentOnChannels) {
  testing::InProcessBroker broker;
  auto consumer = Consumer::connect(broker.path(), "ctl-consumer");
  ASSERT_TRUE(consumer && consumer->uses_channels());
  ASSERT_TRUE(consumer->subscribe("ctl/chan", 4, Backpressure::block_producer));
  auto producer = Producer::connect(broker.path(), "ctl-producer");
  ASSERT_TRUE(producer);
  ASSERT_TRUE(producer->advertise("ctl/chan", LayoutKind::blob, Guarantee::pool));
  auto pool = producer->create_pool("ctl/chan", 8192, 4);
  ASSERT_TRUE(pool) << pool.error().message();
  ASSERT_TRUE(testing::channels_open(*producer, {&*consumer}, 1)) << "no channel opened";
  // Every frame is put on the channel only (the broker sends no Publish once it has said
  // so): wait for that, then publish.
  ASSERT_TRUE(broker.wait_until([](broker::Broker& b) {
    const broker::Topic* t = b.registry().find("ctl/chan");
    return t != nullptr && !t->via_broker;
  }));
  (void)producer->poll_errors();
  std::uint64_t before = 0;
  broker.wait_until([&](broker::Broker& b) {
    before = b.registry().find("ctl/chan")->frames;
    return true;
  });
  const auto publish = [&](std::uint64_t n) {
    for (std::uint64_t i = 0; i < n; ++i) {
      auto slot = producer->acquire(*pool);
      ASSERT_TRUE(slot) << slot.error().message();
      ASSERT_TRUE(producer->publish("ctl/chan", *slot, blob_layout(4096)));
      auto event = consumer->receive();
      ASSERT_TRUE(event && std::holds_alternative<Frame>(*event));
    }
  };
  publish(20);
  const std::uint64_t frames = before + 20;

  const json topics = json_of(shmfdctl({"--socket", broker.path(), "--json", "topics"}));
  ASSERT_EQ(topics.size(), 1U) << topics;
  EXPECT_EQ(topics[0]["frames"], frames) << topics;
  EXPECT_EQ(topics[0]["bytes"], frames * 4096) << topics;
  EXPECT_NE(topics[0]["subscribers"][0]["channel"], 0) << topics;
  const json status = json_of(shmfdctl({"--socket", broker.path(), "--json", "status"}));
  EXPECT_EQ(status["frames"], frames) << status;
  EXPECT_EQ(status["bytes"], frames * 4096) << status;
  EXPECT_EQ(status["bytes_pinned"], 0) << status;
  const CtlRun table = shmfdctl({"--socket", broker.path(), "status"});
  EXPECT_NE(table.out.find("FRAMES"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find(" " + std::to_string(frames) + " "), std::string::npos) << table.out;
  const CtlRun topic_table = shmfdctl({"--socket", broker.path(), "topics"});
  EXPECT_NE(topic_table.out.find(std::to_string(frames * 4) + ".0 KiB"), std::string::npos)
      << topic_table.out;

  // top's rates, while frames flow: its last table's row of the topic shows frames/s and MB/s
  // above 0.
  std::atomic<bool> stop{false};
  std::thread source([&] {
    while (!stop) {
      publish(1);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  const CtlRun top =
      shmfdctl({"--socket", broker.path(), "top", "--count", "2", "--interval", "0.5"});
  stop = true;
  source.join();
  EXPECT_EQ(top.status, 0) << top.out;
  const auto row = top.out.rfind("ctl/chan");
  ASSERT_NE(row, std::string::npos) << top.out;
  // TOPIC, PRODUCER ("2 (pid N command)"), FRAMES/S, MB/S, ...
  const auto after_producer = top.out.find(')', row);
  ASSERT_NE(after_producer, std::string::npos) << top.out;
  std::istringstream fields(
      top.out.substr(after_producer + 1, top.out.find('\n', row) - after_producer - 1));
  std::string fps = "0", mbs = "0";
  fields >> fps >> mbs;
  EXPECT_GT(std::stod(fps), 0.0) << top.out;
  EXPECT_GT(std::stod(mbs), 0.0) << top.out;
}

TEST(ShmfdctlTest, ClearErrorsWhenNoBrokerRunsOrAccessIsDenied) {
  const CtlRun missing = shmfdctl({"--socket", "/tmp/shmfd-no-such-dir/broker.sock", "status"});
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.out.find("no broker is running"), std::string::npos) << missing.out;

  broker::Options options;
  options.socket_mode = 0666;  // let another user connect, so the broker itself must say no
  testing::InProcessBroker broker(options);
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run shmfdctl as another uid";
  const CtlRun denied = shmfdctl({"--socket", broker.path(), "status"}, 65534);
  EXPECT_EQ(denied.status, 3) << denied.out;
  EXPECT_NE(denied.out.find("permission-denied"), std::string::npos) << denied.out;
}

// Run by a user who cannot read other processes' fds, memfds says so instead of silently
// showing less.
TEST(ShmfdctlTest, MemfdsAsAnotherUserSaysWhatItCouldNotSee) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run shmfdctl as another uid";
  const CtlRun as_nobody = shmfdctl({"memfds"}, 65534);
  EXPECT_EQ(as_nobody.status, 0) << as_nobody.out;
  EXPECT_NE(as_nobody.out.find("could not read the fds of"), std::string::npos) << as_nobody.out;
  EXPECT_NE(as_nobody.out.find("run as root to see every memfd"), std::string::npos);
  const CtlRun as_root = shmfdctl({"memfds"});
  EXPECT_EQ(as_root.out.find("could not read"), std::string::npos) << as_root.out;
}

TEST(ShmfdctlTest, MemfdsFindsAPoolMappedByAConsumerAndNobodyAfterItExits) {
  testing::SubprocessBroker broker;
  ASSERT_TRUE(broker.listening()) << broker.output();
  auto producer = Producer::connect(broker.path(), "ctl-producer");
  ASSERT_TRUE(producer);
  ASSERT_TRUE(producer->advertise("leak/hunt", LayoutKind::blob, Guarantee::pool));
  auto pool = producer->create_pool("leak/hunt", 4096, 2);
  ASSERT_TRUE(pool);
  int ready[2];
  ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    auto consumer = Consumer::connect(broker.path(), "mapper");
    if (!consumer || !consumer->subscribe("leak/hunt")) ::_exit(1);
    (void)!::write(ready[1], "s", 1);
    auto event = consumer->receive();  // attaches (maps) the pool
    if (!event) ::_exit(2);
    (void)!::write(ready[1], "m", 1);
    for (;;) ::pause();
  }
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  auto slot = producer->acquire(*pool);
  ASSERT_TRUE(slot);
  ASSERT_TRUE(producer->publish("leak/hunt", *slot, blob_layout(4096)));
  ASSERT_EQ(::read(ready[0], &c, 1), 1);

  const auto find_pool = [](const json& memfds) -> json {
    for (const auto& m : memfds) {
      if (m["name"].get<std::string>().rfind("shmfd:leak/hunt/pool,", 0) == 0) return m;
    }
    return json();
  };
  const auto holder_pids = [](const json& m) {
    std::set<int> pids;
    for (const auto& h : m["holders"]) pids.insert(h["pid"].get<int>());
    return pids;
  };
  const json mapped = find_pool(json_of(shmfdctl({"--json", "memfds", std::to_string(child)})));
  ASSERT_FALSE(mapped.is_null()) << "the consumer's mapping of the pool was not found";
  EXPECT_EQ(mapped["size"], 2 * 4096);
  EXPECT_EQ(mapped["seals"],
            "F_SEAL_SEAL|F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_FUTURE_WRITE|F_SEAL_EXEC")
      << mapped;
  ASSERT_EQ(mapped["holders"].size(), 1U);
  EXPECT_EQ(mapped["holders"][0]["pid"], child);
  EXPECT_TRUE(mapped["holders"][0]["maps"].get<bool>());

  const json everyone = find_pool(json_of(shmfdctl({"--json", "memfds"})));
  ASSERT_FALSE(everyone.is_null());
  EXPECT_EQ(holder_pids(everyone).count(child), 1U);
  EXPECT_EQ(holder_pids(everyone).count(::getpid()), 1U) << "the producer holds it too";
  EXPECT_EQ(holder_pids(everyone).count(broker.pid()), 1U) << "and the broker";

  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  const json after = find_pool(json_of(shmfdctl({"--json", "memfds"})));
  ASSERT_FALSE(after.is_null());
  EXPECT_EQ(holder_pids(after).count(child), 0U) << after;
  ::close(ready[0]);
  ::close(ready[1]);
}

}  // namespace
}  // namespace shmfd

namespace shmfd {
namespace {

// `shmfdctl shm` (issue 20): the machine's shared memory of every kind, with orphans flagged.
// Child processes hold a System V segment, a shm_open file and a memfd; one segment and one
// /dev/shm file are left behind by processes that exited (the orphans).
TEST(ShmfdctlShmTest, ShowsEveryKindWithHoldersOrphansAndAReconciliation) {
  constexpr std::size_t kSize = 3 * 4096;
  const std::string tag = std::to_string(::getpid());
  const std::string held_path = "/dev/shm/shmfd-test-held-" + tag;
  const std::string orphan_path = "/dev/shm/shmfd-test-orphan-" + tag;
  // The orphans: made, touched and left by this process.
  const int orphan_id = ::shmget(IPC_PRIVATE, kSize, IPC_CREAT | 0600);
  ASSERT_GE(orphan_id, 0);
  void* at = ::shmat(orphan_id, nullptr, 0);
  ASSERT_NE(at, reinterpret_cast<void*>(-1));
  std::memset(at, 1, kSize);
  ::shmdt(at);
  {
    const int fd = ::open(orphan_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, kSize), 0);
    std::string bytes(kSize, 'o');
    ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(kSize));
    ::close(fd);
  }
  const int held_id = ::shmget(IPC_PRIVATE, kSize, IPC_CREAT | 0600);
  ASSERT_GE(held_id, 0);
  int ready[2];
  ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    void* seg = ::shmat(held_id, nullptr, 0);
    // shm_open("/NAME") is /dev/shm/NAME.
    const int file =
        ::shm_open(held_path.substr(std::strlen("/dev/shm")).c_str(), O_RDWR | O_CREAT, 0600);
    const int mem = ::memfd_create("shmfd-test-shm", MFD_CLOEXEC);
    if (seg == reinterpret_cast<void*>(-1) || file < 0 || mem < 0 ||
        ::ftruncate(file, kSize) != 0 || ::ftruncate(mem, kSize) != 0) {
      ::_exit(1);
    }
    void* map = ::mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, file, 0);
    void* mmap_mem = ::mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, mem, 0);
    if (map == MAP_FAILED || mmap_mem == MAP_FAILED) ::_exit(1);
    std::memset(seg, 2, kSize);
    std::memset(map, 3, kSize);
    std::memset(mmap_mem, 4, kSize);
    (void)!::write(ready[1], "r", 1);
    for (;;) ::pause();
  }
  ::close(ready[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);

  const json shm = json_of(shmfdctl({"--json", "shm"}));
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ::shmctl(orphan_id, IPC_RMID, nullptr);
  ::shmctl(held_id, IPC_RMID, nullptr);
  ::unlink(held_path.c_str());
  ::unlink(orphan_path.c_str());
  ASSERT_TRUE(shm.is_object()) << shm;

  const auto find = [](const json& list, const char* field, const json& value) {
    for (const auto& e : list) {
      if (e[field] == value) return e;
    }
    return json();
  };
  const json orphan_seg = find(shm["sysv"], "id", orphan_id);
  const json held_seg = find(shm["sysv"], "id", held_id);
  ASSERT_FALSE(orphan_seg.is_null()) << shm["sysv"];
  ASSERT_FALSE(held_seg.is_null()) << shm["sysv"];
  EXPECT_EQ(orphan_seg["size"], kSize);
  EXPECT_EQ(orphan_seg["rss"], kSize);
  EXPECT_EQ(orphan_seg["uid"], ::geteuid());
  EXPECT_EQ(orphan_seg["attached"], 0);
  EXPECT_TRUE(orphan_seg["orphan"].get<bool>());
  EXPECT_EQ(orphan_seg["remove_with"], "ipcrm -m " + std::to_string(orphan_id));
  EXPECT_EQ(held_seg["attached"], 1);
  EXPECT_EQ(held_seg["last_pid"], child);
  EXPECT_FALSE(held_seg["orphan"].get<bool>());

  const json orphan_file = find(shm["tmpfs_files"], "path", orphan_path);
  const json held_file = find(shm["tmpfs_files"], "path", held_path);
  ASSERT_FALSE(orphan_file.is_null());
  ASSERT_FALSE(held_file.is_null());
  EXPECT_EQ(orphan_file["size"], kSize);
  EXPECT_EQ(orphan_file["allocated"], kSize);
  EXPECT_TRUE(orphan_file["orphan"].get<bool>());
  EXPECT_EQ(orphan_file["remove_with"], "rm " + orphan_path);
  EXPECT_FALSE(held_file["orphan"].get<bool>());
  ASSERT_EQ(held_file["holders"].size(), 1U) << held_file;
  EXPECT_EQ(held_file["holders"][0]["pid"], child);
  EXPECT_TRUE(held_file["holders"][0]["fd"].get<bool>());
  EXPECT_TRUE(held_file["holders"][0]["maps"].get<bool>());

  const json memfd = find(shm["memfds"], "name", "shmfd-test-shm");
  ASSERT_FALSE(memfd.is_null());
  EXPECT_EQ(memfd["size"], kSize);
  EXPECT_EQ(memfd["holders"][0]["pid"], child);

  // The reconciliation counts this test's own bytes in each kind.
  const json& rec = shm["reconciliation"];
  EXPECT_GE(rec["sysv_resident"].get<std::uint64_t>(), 2 * kSize);
  EXPECT_GE(rec["tmpfs_used"].get<std::uint64_t>(), 2 * kSize);
  EXPECT_GE(rec["memfds_allocated"].get<std::uint64_t>(), kSize);
  EXPECT_EQ(rec["unreadable_processes"], 0);
  EXPECT_EQ(rec["unaccounted"].get<std::int64_t>(),
            rec["shmem"].get<std::int64_t>() - rec["sysv_resident"].get<std::int64_t>() -
                rec["tmpfs_used"].get<std::int64_t>() -
                rec["memfds_allocated"].get<std::int64_t>());
  EXPECT_GT(shm["limits"]["shmmni"].get<std::uint64_t>(), 0U);
}

// --remove-orphans removes exactly the caller's orphans: not another user's (refused, and
// said), not a segment still attached; and without --yes it asks, and an unanswered
// question removes nothing.
TEST(ShmfdctlShmTest, RemoveOrphansRemovesExactlyTheCallersOrphans) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to make objects of another uid";
  constexpr std::size_t kSize = 4096;
  constexpr uid_t kNobody = 65534;
  const std::string file = "/dev/shm/shmfd-test-nobody-" + std::to_string(::getpid());
  const int root_orphan = ::shmget(IPC_PRIVATE, kSize, IPC_CREAT | 0600);
  ASSERT_GE(root_orphan, 0);
  int ids[2];
  ASSERT_EQ(::pipe2(ids, O_CLOEXEC), 0);
  // As nobody: an orphaned segment and /dev/shm file, and a segment it keeps attached.
  const pid_t keeper = ::fork();
  if (keeper == 0) {
    if (::setgid(kNobody) != 0 || ::setuid(kNobody) != 0) ::_exit(1);
    const int orphan = ::shmget(IPC_PRIVATE, kSize, IPC_CREAT | 0600);
    const int kept = ::shmget(IPC_PRIVATE, kSize, IPC_CREAT | 0600);
    void* a = ::shmat(orphan, nullptr, 0);
    void* b = ::shmat(kept, nullptr, 0);
    const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (orphan < 0 || kept < 0 || a == reinterpret_cast<void*>(-1) ||
        b == reinterpret_cast<void*>(-1) || fd < 0 || ::ftruncate(fd, kSize) != 0) {
      ::_exit(1);
    }
    ::shmdt(a);
    ::close(fd);
    const int both[2] = {orphan, kept};
    (void)!::write(ids[1], both, sizeof both);
    for (;;) ::pause();
  }
  ::close(ids[1]);
  int nobody[2] = {-1, -1};
  ASSERT_EQ(::read(ids[0], nobody, sizeof nobody), static_cast<ssize_t>(sizeof nobody));
  ::close(ids[0]);
  const auto exists = [](int id) {
    shmid_ds ds{};
    return ::shmctl(id, IPC_STAT, &ds) == 0;
  };

  const CtlRun asked = shmfdctl({"shm", "--remove-orphans"}, kNobody);
  EXPECT_EQ(asked.status, 1) << asked.out;
  EXPECT_NE(asked.out.find("nothing removed"), std::string::npos) << asked.out;
  EXPECT_TRUE(exists(nobody[0]));

  const CtlRun removed = shmfdctl({"shm", "--remove-orphans", "--yes"}, kNobody);
  EXPECT_EQ(removed.status, 0) << removed.out;
  EXPECT_FALSE(exists(nobody[0])) << removed.out;
  EXPECT_NE(::access(file.c_str(), F_OK), 0) << removed.out;
  EXPECT_TRUE(exists(nobody[1])) << "an attached segment is no orphan";
  EXPECT_TRUE(exists(root_orphan)) << "another user's orphan was removed";
  EXPECT_NE(removed.out.find("not removing segment " + std::to_string(root_orphan) +
                             ": owned by uid 0, not you"),
            std::string::npos)
      << removed.out;

  ::kill(keeper, SIGKILL);
  ::waitpid(keeper, nullptr, 0);
  ::shmctl(nobody[1], IPC_RMID, nullptr);
  ::shmctl(root_orphan, IPC_RMID, nullptr);
  ::unlink(file.c_str());
}

}  // namespace
}  // namespace shmfd
