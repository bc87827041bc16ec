// A small but complete checkpoint for the inspect unit tests, with a file of
// every image kind (the restore statistics outside the manifest, as a
// restore leaves them): a tree of two
// processes (one a zombie), a core with a thread whose registers, XSAVE
// bytes and an empty-but-present alternate stack must survive JSON, open
// files of several kinds (a oneof each, bytes in a memfd and a socket
// queue), a memory map and page runs placed so that two needles cross a page
// boundary: one inside a run, one where two runs meet.
#pragma once

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "core.pb.h"
#include "fds.pb.h"
#include "image/format.h"
#include "image/writer.h"
#include "mm.pb.h"
#include "stats.pb.h"
#include "tree.pb.h"

namespace cryo::test {

inline constexpr int kSamplePid = 100;
inline constexpr uint64_t kHeap = 0x10000;        // 3 pages, runs: 2 pages + 1 page
inline constexpr uint64_t kLibrary = 0x20000;     // 2 pages of a file, 1 stored
inline constexpr uint64_t kUntouched = 0x30000;   // 1 anonymous page, not stored
inline constexpr const char* kNeedleInRun = "NEEDLE-IN-RUN";
inline constexpr const char* kNeedleAtSeam = "NEEDLE-AT-SEAM";
inline constexpr uint64_t kNeedleInRunAddress = kHeap + 4096 - 5;
inline constexpr uint64_t kNeedleAtSeamAddress = kHeap + 2 * 4096 - 7;

inline std::vector<char> sample_page_data()
{
    // Run A: heap pages 0-1 (file offset 0), run C: library page (offset
    // 8192), run B: heap page 2 (offset 12288): B is not after A in the file.
    std::vector<char> data(4 * 4096);
    for (size_t i = 0; i < data.size(); ++i)
        data[i] = static_cast<char>('a' + i % 26);
    auto heap_offset = [](uint64_t address) { return address < kHeap + 2 * 4096 ? address - kHeap : 12288 + (address - kHeap - 2 * 4096); };
    for (size_t i = 0; i < std::strlen(kNeedleInRun); ++i)
        data[heap_offset(kNeedleInRunAddress + i)] = kNeedleInRun[i];
    for (size_t i = 0; i < std::strlen(kNeedleAtSeam); ++i)
        data[heap_offset(kNeedleAtSeamAddress + i)] = kNeedleAtSeam[i];
    return data;
}

inline Result<void> write_sample_checkpoint(const std::string& directory)
{
    using namespace image;
    ImageWriter writer = TRY(ImageWriter::create(directory, SyncMode::NoSync));

    ProcessTree tree;
    tree.set_root_pid(kSamplePid);
    auto* root = tree.add_processes();
    root->set_pid(kSamplePid);
    root->set_pgid(kSamplePid);
    root->set_sid(kSamplePid);
    root->add_tids(kSamplePid);
    root->add_tids(kSamplePid + 1);
    root->set_state(PROCESS_STATE_ALIVE);
    root->set_comm("sample \"quoted\"");
    auto* zombie = tree.add_processes();
    zombie->set_pid(kSamplePid + 2);
    zombie->set_ppid(kSamplePid);
    zombie->set_state(PROCESS_STATE_ZOMBIE);
    zombie->set_exit_status(-1);
    TRY(writer.write_message(std::string(kTreeName), ImageKind::Tree, tree));

    ProcessCore core;
    core.set_pid(kSamplePid);
    auto* thread = core.add_threads();
    thread->set_tid(kSamplePid);
    thread->mutable_registers()->set_rip(0xffffffffffffff00ull);
    thread->mutable_registers()->set_orig_rax(~0ull);
    thread->set_xstate(std::string("\0\1\2\377xsave", 9));
    thread->mutable_altstack();   // present, all defaults
    thread->set_interrupted_result(-4);
    core.add_cpu_affinity(3);
    core.set_cwd("/tmp/ü");
    TRY(writer.write_message(core_name(kSamplePid), ImageKind::Core, core));

    MemoryImage memory;
    memory.set_pid(kSamplePid);
    auto add_vma = [&](uint64_t start, uint64_t end, VmaKind kind, const char* path) {
        auto* vma = memory.add_vmas();
        vma->set_start(start);
        vma->set_end(end);
        vma->set_prot(3);
        vma->set_kind(kind);
        vma->set_path(path);
    };
    add_vma(kHeap, kHeap + 3 * 4096, VMA_KIND_ANONYMOUS, "[heap]");
    add_vma(kLibrary, kLibrary + 2 * 4096, VMA_KIND_FILE_PRIVATE, "/lib/sample.so");
    add_vma(kUntouched, kUntouched + 4096, VMA_KIND_ANONYMOUS, "");
    TRY(writer.write_message(memory_name(kSamplePid), ImageKind::Memory, memory));

    PageMap pagemap;
    pagemap.set_pid(kSamplePid);
    pagemap.set_page_file(pages_name(kSamplePid));
    auto add_run = [&](uint64_t address, uint64_t pages, uint64_t offset) {
        auto* run = pagemap.add_runs();
        run->set_address(address);
        run->set_page_count(pages);
        run->set_file_offset(offset);
    };
    add_run(kHeap, 2, 0);
    add_run(kLibrary, 1, 8192);
    add_run(kHeap + 2 * 4096, 1, 12288);
    TRY(writer.write_message(pagemap_name(kSamplePid), ImageKind::PageMap, pagemap));
    OutputFile pages = TRY(writer.create_file(pages_name(kSamplePid)));
    auto data = sample_page_data();
    TRY(pages.write(std::as_bytes(std::span(data))));
    TRY(writer.finish_file(std::move(pages)));

    FdTable fds;
    fds.set_pid(kSamplePid);
    for (int fd = 0; fd < 3; ++fd) {
        auto* entry = fds.add_fds();
        entry->set_fd(fd);
        entry->set_file_id(static_cast<uint32_t>(fd + 1));
    }
    TRY(writer.write_message(fdtable_name(kSamplePid), ImageKind::FdTable, fds));

    FileTable files;
    auto* regular = files.add_files();
    regular->set_id(1);
    regular->set_kind(FILE_KIND_REGULAR);
    regular->set_position(12345);
    regular->mutable_regular()->set_path("/tmp/data");
    auto* memfd = files.add_files();
    memfd->set_id(2);
    memfd->set_kind(FILE_KIND_MEMFD);
    memfd->mutable_memfd()->set_memfd_id(7);
    auto* socket = files.add_files();
    socket->set_id(3);
    socket->set_kind(FILE_KIND_UNIX_SOCKET);
    socket->mutable_unix_socket()->add_queued(std::string("\0queued\n", 8));
    auto* saved = files.add_memfds();
    saved->set_memfd_id(7);
    auto* extent = saved->add_extents();
    extent->set_offset(4096);
    extent->set_data(std::string("\377\0binary", 8));
    TRY(writer.write_message(std::string(kFileTableName), ImageKind::FileTable, files));

    DumpStats dump_stats;
    auto* phase = dump_stats.add_phases();
    phase->set_name("freeze");
    phase->set_ms(0.25);
    dump_stats.set_pages_stored(4);
    TRY(writer.write_message(std::string(kDumpStatsName), ImageKind::Stats, dump_stats));

    Manifest manifest;
    manifest.set_tool_version("test");
    manifest.set_root_pid(kSamplePid);
    manifest.set_created_unix_ns(1234567890123456789ull);
    TRY(writer.commit(std::move(manifest)));

    // What a restore leaves behind, outside the manifest.
    RestoreStats restore_stats;
    restore_stats.set_total_ms(12.5);
    restore_stats.set_page_reads(2);
    std::string bytes = TRY(encode_image(ImageKind::Stats, restore_stats));
    std::ofstream(directory + "/" + std::string(kRestoreStatsName), std::ios::binary) << bytes;
    return {};
}

} // namespace cryo::test
