// Tests of image/validate.h: the checks restore and `cryo mem` make on
// memory maps and page maps before reading memory through them.
#include <functional>

#include <gtest/gtest.h>

#include <functional>

#include "image/validate.h"

namespace cryo::image {
namespace {

MemoryImage mappings(std::initializer_list<std::pair<uint64_t, uint64_t>> ranges)
{
    MemoryImage memory;
    for (auto [start, end] : ranges) {
        auto* vma = memory.add_vmas();
        vma->set_start(start);
        vma->set_end(end);
    }
    return memory;
}

PageMap runs(std::initializer_list<std::array<uint64_t, 3>> list)
{
    PageMap map;
    for (auto [address, pages, offset] : list) {
        auto* run = map.add_runs();
        run->set_address(address);
        run->set_page_count(pages);
        run->set_file_offset(offset);
    }
    return map;
}

std::string error_of(const Result<void>& result) { return result ? "" : result.error().message(); }

TEST(ImageValidate, MappingsMustBeAlignedOrderedAndDisjoint)
{
    EXPECT_TRUE(check_mappings(mappings({ { 0x2000, 0x4000 }, { 0x1000, 0x2000 }, { 0xffffffffff600000, 0xffffffffff601000 } })));
    EXPECT_NE(error_of(check_mappings(mappings({ { 0x2000, 0x2000 } }))).find("invalid mapping"), std::string::npos);
    EXPECT_NE(error_of(check_mappings(mappings({ { 0x3000, 0x1000 } }))).find("invalid mapping"), std::string::npos);
    EXPECT_NE(error_of(check_mappings(mappings({ { 0x1001, 0x2000 } }))).find("invalid mapping"), std::string::npos);
    EXPECT_NE(error_of(check_mappings(mappings({ { 0x1000, 0x3000 }, { 0x2000, 0x4000 } }))).find("overlap"),
              std::string::npos);
}

TEST(ImageValidate, RunsMustStayInsideThePageFileWithoutWrapping)
{
    EXPECT_TRUE(check_page_map(runs({ { 0x1000, 2, 0 }, { 0x8000, 1, 8192 } }), "pages-1.img", 12288));
    EXPECT_TRUE(check_page_map(runs({}), "pages-1.img", 0));
    struct Case {
        std::array<uint64_t, 3> run;
        const char* error;
    };
    for (const auto& bad : { Case { { 0x1000, 4, 0 }, "lies beyond the end of pages-1.img (12288 bytes" },
                             Case { { 0x1000, 1, 12288 }, "lies beyond the end of" },
                             Case { { 0x1000, 1, ~0ull - 4095 }, "lies beyond the end of" },
                             Case { { 0x1000, 1ull << 52, 0 }, "not a valid range of pages" },
                             Case { { 0x1000, ~0ull, 0 }, "not a valid range of pages" },
                             Case { { 0x1000, 0, 0 }, "not a valid range of pages" },
                             Case { { 0x1800, 1, 0 }, "not a valid range of pages" },
                             Case { { kUserAddressLimit, 1, 0 }, "not a valid range of pages" },
                             Case { { ~0ull - 4095, 1, 0 }, "not a valid range of pages" } }) {
        auto error = error_of(check_page_map(runs({ { 0x10000, 1, 0 }, bad.run }), "pages-1.img", 12288));
        EXPECT_NE(error.find("run 1 ("), std::string::npos) << error;
        EXPECT_NE(error.find(bad.error), std::string::npos) << error;
    }
    auto overlap = error_of(check_page_map(runs({ { 0x3000, 1, 0 }, { 0x1000, 3, 4096 } }), "pages-1.img", 16384));
    EXPECT_NE(overlap.find("overlap"), std::string::npos) << overlap;
}

TEST(ImageValidate, RunsMustLieInsideOneMapping)
{
    auto memory = mappings({ { 0x1000, 0x3000 }, { 0x3000, 0x5000 }, { 0x8000, 0x9000 } });
    EXPECT_TRUE(check_runs_in_mappings(runs({ { 0x1000, 2, 0 }, { 0x3000, 2, 0 }, { 0x8000, 1, 0 } }), memory));
    for (auto run : { std::array<uint64_t, 3> { 0x0, 1, 0 }, { 0x2000, 2, 0 }, { 0x5000, 1, 0 }, { 0x8000, 2, 0 } }) {
        auto error = error_of(check_runs_in_mappings(runs({ run }), memory));
        EXPECT_NE(error.find("not inside one mapping"), std::string::npos) << std::hex << run[0] << ": " << error;
    }
}

// A tree with one UTS and one IPC namespace, both valid, for the hostile
// variants below.
ProcessTree tree_with_namespaces()
{
    ProcessTree tree;
    auto* entry = tree.add_processes();
    entry->set_pid(100);
    entry->set_uts_ns(7);
    entry->set_ipc_ns(8);
    auto* uts = tree.add_namespaces();
    uts->set_id(7);
    uts->set_kind(NAMESPACE_KIND_UTS);
    uts->mutable_uts()->set_hostname("box");
    auto* ipc = tree.add_namespaces();
    ipc->set_id(8);
    ipc->set_kind(NAMESPACE_KIND_IPC);
    auto* sysctl = ipc->mutable_ipc()->add_sysctls();
    sysctl->set_name("kernel/sem");
    sysctl->set_value("32000\t1024000000\t500\t32000");
    auto* segment = ipc->mutable_ipc()->add_shared_memory();
    segment->mutable_permissions()->set_id(3);
    segment->set_size(4096);
    segment->set_content("abc");
    auto* set = ipc->mutable_ipc()->add_semaphores();
    set->add_values(1);
    auto* queue = ipc->mutable_ipc()->add_message_queues();
    queue->add_messages()->set_type(1);
    return tree;
}

TEST(ImageValidate, NamespacesOfAHostileTreeAreRefused)
{
    EXPECT_TRUE(check_namespaces(tree_with_namespaces()));
    struct Case {
        std::function<void(ProcessTree&)> spoil;
        std::string error;
    };
    std::vector<Case> cases {
        { [](ProcessTree& t) { t.mutable_processes(0)->set_uts_ns(9); }, "is not listed" },
        { [](ProcessTree& t) { t.mutable_processes(0)->set_ipc_ns(7); }, "is not listed" },
        { [](ProcessTree& t) { t.mutable_namespaces(1)->set_id(7); t.mutable_namespaces(1)->set_kind(NAMESPACE_KIND_UTS); },
          "listed twice" },
        { [](ProcessTree& t) { t.mutable_namespaces(0)->set_kind(static_cast<NamespaceKind>(9)); }, "unknown kind" },
        { [](ProcessTree& t) { t.mutable_namespaces(0)->mutable_uts()->set_hostname(std::string(65, 'h')); }, "longer than 64" },
        { [](ProcessTree& t) { t.mutable_namespaces(1)->mutable_ipc()->mutable_sysctls(0)->set_name("../../etc/passwd"); },
          "is not one of an IPC namespace" },
        { [](ProcessTree& t) { t.mutable_namespaces(1)->mutable_ipc()->mutable_sysctls(0)->set_name("kernel/core_pattern"); },
          "is not one of an IPC namespace" },
        { [](ProcessTree& t) { t.mutable_namespaces(1)->mutable_ipc()->mutable_sysctls(0)->set_value("|/bin/sh"); },
          "not a list of numbers" },
        { [](ProcessTree& t) { t.mutable_namespaces(1)->mutable_ipc()->mutable_shared_memory(0)->set_size(2); }, "size 2" },
        { [](ProcessTree& t) { t.mutable_namespaces(1)->mutable_ipc()->mutable_shared_memory(0)->mutable_permissions()->set_mode(04777); },
          "not a permission mode" },
        { [](ProcessTree& t) { *t.mutable_namespaces(1)->mutable_ipc()->add_shared_memory() = t.namespaces(1).ipc().shared_memory(0); },
          "listed twice" },
        { [](ProcessTree& t) { t.mutable_namespaces(1)->mutable_ipc()->mutable_semaphores(0)->set_values(0, 40000); },
          "above SEMVMX" },
        { [](ProcessTree& t) { t.mutable_namespaces(1)->mutable_ipc()->mutable_semaphores(0)->clear_values(); }, "0 semaphores" },
        { [](ProcessTree& t) { t.mutable_namespaces(1)->mutable_ipc()->mutable_message_queues(0)->mutable_messages(0)->set_type(0); },
          "a message of type 0" },
    };
    for (const auto& bad : cases) {
        auto tree = tree_with_namespaces();
        bad.spoil(tree);
        auto error = error_of(check_namespaces(tree));
        EXPECT_NE(error.find(bad.error), std::string::npos) << bad.error << ": " << error;
    }
}

TEST(ImageValidate, SystemVAttachmentsNameASegmentOfTheCheckpoint)
{
    auto tree = tree_with_namespaces();
    auto* host = tree.add_host_shared_memory();
    host->mutable_permissions()->set_id(5);
    host->set_size(8192);
    MemoryImage memory;
    auto* vma = memory.add_vmas();
    vma->set_kind(VMA_KIND_SYSV_SHM);
    vma->set_shmem_id(3);   // the namespace's segment 3
    vma->set_shmem_size(4096);
    EXPECT_TRUE(check_sysv_attachments(tree, tree.processes(0), memory));
    vma->set_shmem_id(5);   // only in cryo's namespace: not the process's
    EXPECT_NE(error_of(check_sysv_attachments(tree, tree.processes(0), memory)).find("does not hold"), std::string::npos);
    tree.mutable_processes(0)->set_ipc_ns(0);
    vma->set_shmem_size(8192);
    EXPECT_TRUE(check_sysv_attachments(tree, tree.processes(0), memory));
    vma->set_shmem_id(6);   // some other segment of the machine
    EXPECT_NE(error_of(check_sysv_attachments(tree, tree.processes(0), memory)).find("does not hold"), std::string::npos);
}

} // namespace
} // namespace cryo::image

namespace cryo::image {
namespace {

// A valid established IPv4 TCP connection; each test breaks one thing.
FileTable inet_connection()
{
    FileTable files;
    auto* file = files.add_files();
    file->set_id(1);
    file->set_kind(FILE_KIND_INET_SOCKET);
    auto* socket = file->mutable_inet_socket();
    socket->set_family(2);     // AF_INET
    socket->set_type(1);       // SOCK_STREAM
    socket->set_protocol(6);   // IPPROTO_TCP
    socket->set_state(1);      // TCP_ESTABLISHED
    socket->mutable_local()->set_address(std::string("\x7f\0\0\x01", 4));
    socket->mutable_local()->set_port(4000);
    socket->mutable_peer()->set_address(std::string("\x7f\0\0\x01", 4));
    socket->mutable_peer()->set_port(5000);
    socket->mutable_tcp()->set_mss(65483);
    socket->mutable_tcp()->set_send_queue("abc");
    socket->mutable_tcp()->set_unsent_bytes(2);
    return files;
}

std::string inet_error(const std::function<void(InetSocket&)>& edit)
{
    auto files = inet_connection();
    edit(*files.mutable_files(0)->mutable_inet_socket());
    auto result = check_inet_sockets(files);
    return result ? "" : result.error().message();
}

TEST(ImageValidate, HostileIpSocketsAreRefused)
{
    EXPECT_EQ(inet_error([](InetSocket&) { }), "");
    EXPECT_NE(inet_error([](InetSocket& s) { s.set_family(99); }).find("file 1 (IP socket): IP socket of address family 99"),
              std::string::npos);
    EXPECT_NE(inet_error([](InetSocket& s) { s.set_protocol(17); }).find("type 1 and protocol 17"), std::string::npos);
    EXPECT_NE(inet_error([](InetSocket& s) { s.mutable_local()->set_address("12345"); }).find("local address of 5 bytes"),
              std::string::npos);
    EXPECT_NE(inet_error([](InetSocket& s) { s.mutable_peer()->set_port(70000); }).find("peer port 70000"), std::string::npos);
    EXPECT_NE(inet_error([](InetSocket& s) { s.set_state(200); }).find("TCP state 200"), std::string::npos);
    EXPECT_NE(inet_error([](InetSocket& s) { s.mutable_tcp()->set_unsent_bytes(4); }).find("4 unsent bytes in a send queue of 3"),
              std::string::npos);
    EXPECT_NE(inet_error([](InetSocket& s) { s.mutable_tcp()->set_send_wscale(15); }).find("TCP options out of range"),
              std::string::npos);
    EXPECT_NE(inet_error([](InetSocket& s) { s.mutable_tcp()->set_receive_queue(std::string((64 << 20) + 1, 'x')); })
                  .find("TCP queues"),
              std::string::npos);
    EXPECT_NE(inet_error([](InetSocket& s) { s.clear_peer(); }).find("without both addresses"), std::string::npos);
    EXPECT_NE(inet_error([](InetSocket& s) { s.mutable_options()->set_bind_device(std::string(20, 'x')); })
                  .find("device name of 20 bytes"),
              std::string::npos);
    EXPECT_NE(inet_error([](InetSocket& s) {
                  s.clear_tcp();
                  s.set_type(2);
                  s.set_protocol(17);
                  s.add_queued()->set_data(std::string(70000, 'x'));
              }).find("a queued datagram of 70000 bytes"),
              std::string::npos);
}

} // namespace
} // namespace cryo::image
