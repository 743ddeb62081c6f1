// Measures device-memory bandwidth with a large device-to-device copy, the ceiling a decode step
// (which reads every weight once) is judged against.
#pragma once

namespace shardlm::cuda {

// GB/s (1e9 bytes/s) counting bytes read plus bytes written, best of several copies.
double measure_copy_bandwidth(int device);
// GB/s of pinned host memory to the device, the ceiling for loading weights.
double measure_host_to_device_bandwidth(int device);

}  // namespace shardlm::cuda
