// Memory strings and device budgets: sizes parse to the bytes Accelerate's convert_file_size_to_int
// gives, --max-memory / --devices lists in both their text and JSON forms, and every malformed
// input is refused with a message that names the option and the token at fault.
#include <gtest/gtest.h>

#include <string>

#include "error_message.h"
#include "plan/device_map/device_budget.h"
#include "plan/memory_size.h"

namespace shardlm {
namespace {

constexpr int64_t kGiB = int64_t(1) << 30;

TEST(MemorySize, UnitsAreAcceleratesUnits) {
  EXPECT_EQ(parse_memory_size("1MiB", "x"), 1048576);  // the docstring's own example
  EXPECT_EQ(parse_memory_size("20GiB", "x"), 20 * kGiB);
  EXPECT_EQ(parse_memory_size("20gib", "x"), 20 * kGiB);        // case-insensitive
  EXPECT_EQ(parse_memory_size("5KiB", "x"), 5120);
  EXPECT_EQ(parse_memory_size("10GB", "x"), int64_t(10'000'000'000));  // decimal: 10 * 10^9
  EXPECT_EQ(parse_memory_size("10gB", "x"), int64_t(10'000'000'000));  // final "B": bytes
  EXPECT_EQ(parse_memory_size("5MB", "x"), 5'000'000);
  EXPECT_EQ(parse_memory_size("5KB", "x"), 5'000);
  EXPECT_EQ(parse_memory_size("123", "x"), 123);  // plain bytes
}

TEST(MemorySize, LowercaseFinalBOfADecimalUnitIsBits) {
  // Accelerate: int(float("10") * 10**9) // 8 when the string ends with "b".
  EXPECT_EQ(parse_memory_size("10Gb", "x"), int64_t(1'250'000'000));
  EXPECT_EQ(parse_memory_size("10gb", "x"), int64_t(1'250'000'000));
  EXPECT_EQ(parse_memory_size("8mb", "x"), 1'000'000);
  EXPECT_EQ(parse_memory_size("8Kb", "x"), 1'000);
  EXPECT_EQ(parse_memory_size("1gib", "x"), kGiB);  // binary units have no bit spelling
}

TEST(MemorySize, FractionsTruncateAfterScaling) {
  EXPECT_EQ(parse_memory_size("1.5GiB", "x"), 3 * kGiB / 2);
  EXPECT_EQ(parse_memory_size("0.1GiB", "x"), 107374182);  // int(0.1 * 2**30) = int(107374182.4)
  EXPECT_EQ(parse_memory_size(".5KiB", "x"), 512);
  EXPECT_EQ(parse_memory_size("1e3MB", "x"), 1'000'000'000);
  EXPECT_EQ(parse_memory_size(" 20 GiB ", "x"), 20 * kGiB);  // Python's float() ignores the spaces too
  EXPECT_EQ(parse_memory_size("0GiB", "x"), 0);
}

TEST(MemorySize, MalformedSizesNameOptionAndToken) {
  EXPECT_ERROR_NAMES(parse_memory_size("", "--max-memory"), "--max-memory", "empty");
  EXPECT_ERROR_NAMES(parse_memory_size("GiB", "--max-memory"), "--max-memory", "\"GiB\"");
  EXPECT_ERROR_NAMES(parse_memory_size("20TB", "--max-memory"), "\"20TB\"", "unknown unit");
  EXPECT_ERROR_NAMES(parse_memory_size("20B", "--devices"), "--devices", "\"20B\"");
  EXPECT_ERROR_NAMES(parse_memory_size("-1GiB", "--max-memory"), "\"-1GiB\"", "negative");
  EXPECT_ERROR_NAMES(parse_memory_size("20 GiBs", "--max-memory"), "\"20 GiBs\"");
  EXPECT_ERROR_NAMES(parse_memory_size("lots", "--max-memory"), "\"lots\"");
  EXPECT_ERROR_NAMES(parse_memory_size("infGB", "--max-memory"), "\"infGB\"");
  EXPECT_ERROR_NAMES(parse_memory_size("nanGiB", "--max-memory"), "\"nanGiB\"");
  EXPECT_ERROR_NAMES(parse_memory_size("0x10GB", "--max-memory"), "\"0x10GB\"");
  EXPECT_ERROR_NAMES(parse_memory_size("1e400GB", "--max-memory"), "\"1e400GB\"");
  EXPECT_ERROR_NAMES(parse_memory_size("9000000000GiB", "--max-memory"), "too large");
  EXPECT_ERROR_NAMES(parse_memory_size("99999999999999999999", "--max-memory"), "too large");
}

TEST(MemorySize, FormatsInBinaryUnits) {
  EXPECT_EQ(format_memory_size(512), "512 B");
  EXPECT_EQ(format_memory_size(1536), "1.50 KiB");
  EXPECT_EQ(format_memory_size(80 * kGiB), "80.00 GiB");
  EXPECT_EQ(format_memory_size(3 * kGiB / 2), "1.50 GiB");
}

TEST(DeviceId, SpellingsOfEachDevice) {
  EXPECT_EQ(parse_device_id("0", "x"), DeviceId::cuda(0));
  EXPECT_EQ(parse_device_id("cuda:3", "x"), DeviceId::cuda(3));
  EXPECT_EQ(parse_device_id("cuda", "x"), DeviceId::cuda(0));
  EXPECT_EQ(parse_device_id("cpu", "x"), DeviceId::cpu());
  EXPECT_EQ(parse_device_id("disk", "x"), DeviceId::disk());
  EXPECT_EQ(DeviceId::cuda(1).name(), "cuda:1");
  EXPECT_TRUE(DeviceId::cuda(7) < DeviceId::cpu() && DeviceId::cpu() < DeviceId::disk());
  EXPECT_ERROR_NAMES(parse_device_id("gpu0", "--max-memory"), "--max-memory", "\"gpu0\"");
  EXPECT_ERROR_NAMES(parse_device_id("cuda:x", "--max-memory"), "\"cuda:x\"");
  EXPECT_ERROR_NAMES(parse_device_id("-1", "--max-memory"), "\"-1\"");
  EXPECT_ERROR_NAMES(parse_device_id("mps", "--max-memory"), "\"mps\"");
}

TEST(MemoryEntries, TextFormInDeviceOrder) {
  const std::vector<MemoryEntry> entries = parse_memory_entries("cpu=64GiB, 1=40GiB,0=20GiB,disk", "--max-memory");
  ASSERT_EQ(entries.size(), 4u);
  EXPECT_EQ(entries[0].device, DeviceId::cuda(0));
  EXPECT_EQ(entries[0].bytes, 20 * kGiB);
  EXPECT_EQ(entries[1].device, DeviceId::cuda(1));
  EXPECT_EQ(entries[1].bytes, 40 * kGiB);
  EXPECT_EQ(entries[2].device, DeviceId::cpu());
  EXPECT_EQ(entries[2].bytes, 64 * kGiB);
  EXPECT_EQ(entries[3].device, DeviceId::disk());
  EXPECT_FALSE(entries[3].bytes.has_value());
}

TEST(MemoryEntries, JsonFormTakesStringsAndByteCounts) {
  const std::vector<MemoryEntry> entries =
      parse_memory_entries(R"({"0": "20GiB", "cpu": "64GiB", "1": 10000000, "cuda:2": "1GB"})", "--max-memory");
  ASSERT_EQ(entries.size(), 4u);
  EXPECT_EQ(entries[0].bytes, 20 * kGiB);
  EXPECT_EQ(entries[1].device, DeviceId::cuda(1));
  EXPECT_EQ(entries[1].bytes, 10'000'000);
  EXPECT_EQ(entries[2].device, DeviceId::cuda(2));
  EXPECT_EQ(entries[2].bytes, 1'000'000'000);
  EXPECT_EQ(entries[3].device, DeviceId::cpu());
}

TEST(MemoryEntries, MalformedListsNameTheToken) {
  EXPECT_ERROR_NAMES(parse_memory_entries("0=1GiB,cuda:0=2GiB", "--max-memory"), "--max-memory", "cuda:0", "twice");
  EXPECT_ERROR_NAMES(parse_memory_entries("0=1GiB,,cpu=1GiB", "--max-memory"), "empty entry");
  EXPECT_ERROR_NAMES(parse_memory_entries("tpu=1GiB", "--max-memory"), "\"tpu\"");
  EXPECT_ERROR_NAMES(parse_memory_entries("0=1GiB,cpu=lots", "--max-memory"), "\"lots\"");
  EXPECT_ERROR_NAMES(parse_memory_entries("", "--max-memory"), "empty entry");
  EXPECT_ERROR_NAMES(parse_memory_entries(R"({"0": "1GiB", "0": "2GiB"})", "--max-memory"), "--max-memory", "more than once");
  EXPECT_ERROR_NAMES(parse_memory_entries(R"({"0": 1.5})", "--max-memory"), "\"0\"", "number 1.5");
  EXPECT_ERROR_NAMES(parse_memory_entries(R"({"cpu": -5})", "--max-memory"), "\"cpu\"", "negative");
  EXPECT_ERROR_NAMES(parse_memory_entries(R"({"0": "1GiB",})", "--max-memory"), "--max-memory", "not valid JSON");
  EXPECT_ERROR_NAMES(parse_memory_entries(R"({"0": true})", "--max-memory"), "\"0\"", "true");
  EXPECT_ERROR_NAMES(parse_memory_entries(R"({})", "--max-memory"), "names no device");
  EXPECT_ERROR_NAMES(parse_memory_entries(R"({"gpu": "1GiB"})", "--max-memory"), "\"gpu\"");
}

TEST(DeviceBudgets, DeclaredDevicesNeedSizesExceptDisk) {
  const std::vector<DeviceBudget> budgets = budgets_from_declaration("cuda:0=80GiB,cuda:1=80GiB,cpu=256GiB,disk");
  ASSERT_EQ(budgets.size(), 4u);
  EXPECT_EQ(budgets[1].device, DeviceId::cuda(1));
  EXPECT_EQ(budgets[2].bytes, 256 * kGiB);
  EXPECT_FALSE(budgets[3].bytes.has_value());
  EXPECT_EQ(budgets[0].source, "--devices");
  EXPECT_ERROR_NAMES(budgets_from_declaration("cuda:0,cpu=1GiB"), "--devices", "cuda:0 needs a size");
}

TEST(DeviceBudgets, MaxMemoryKeepsOnlyTheDevicesItNames) {
  const std::vector<DeviceBudget> available = budgets_from_declaration("0=80GiB,1=80GiB,cpu=256GiB");
  // As Accelerate's get_max_memory: GPU 1 is not named, so it is not used.
  const std::vector<DeviceBudget> budgets = apply_max_memory(available, "0=20GiB,cpu=64GiB");
  ASSERT_EQ(budgets.size(), 2u);
  EXPECT_EQ(budgets[0].device, DeviceId::cuda(0));
  EXPECT_EQ(budgets[0].bytes, 20 * kGiB);
  EXPECT_EQ(budgets[0].source, "--max-memory");
  EXPECT_EQ(budgets[1].device, DeviceId::cpu());
  EXPECT_EQ(budgets[1].bytes, 64 * kGiB);
}

TEST(DeviceBudgets, MaxMemoryAboveFreeMemoryIsClampedAndSaysSo) {
  const std::vector<DeviceBudget> available = budgets_from_declaration("0=80GiB,cpu=256GiB");
  const std::vector<DeviceBudget> budgets = apply_max_memory(available, "0=100GiB,cpu,disk");
  ASSERT_EQ(budgets.size(), 3u);
  EXPECT_EQ(budgets[0].bytes, 80 * kGiB);
  EXPECT_NE(budgets[0].source.find("clamped"), std::string::npos) << budgets[0].source;
  EXPECT_EQ(budgets[1].bytes, 256 * kGiB);  // a bare name keeps the device's own size
  EXPECT_EQ(budgets[2].device, DeviceId::disk());  // naming disk allows it, unlimited
  EXPECT_FALSE(budgets[2].bytes.has_value());
  EXPECT_ERROR_NAMES(apply_max_memory(available, "2=1GiB"), "--max-memory", "cuda:2", "cuda:0, cpu");
}

TEST(DeviceBudgets, CpuBudgetIsMemAvailable) {
  const DeviceBudget cpu = cpu_budget_from_meminfo("MemTotal:       65536000 kB\nMemFree:  100 kB\n"
                                                   "MemAvailable:   32768000 kB\nBuffers: 1 kB\n");
  EXPECT_EQ(cpu.device, DeviceId::cpu());
  EXPECT_EQ(cpu.bytes, int64_t(32768000) * 1024);
  EXPECT_ERROR_NAMES(cpu_budget_from_meminfo("MemTotal: 1 kB\n"), "MemAvailable");
  const std::vector<DeviceBudget> here = detect_devices();  // this machine: the CPU, with some memory free
  ASSERT_FALSE(here.empty());
  EXPECT_EQ(here.back().device, DeviceId::cpu());
  EXPECT_GT(*here.back().bytes, 0);
}

}  // namespace
}  // namespace shardlm
