// sim_registry.h: registers an `extern "C" __global__` kernel with the simulator. The build script
// appends `CLIP_SIM_REGISTER(name)` for every kernel of a .cu file to that file's simulator
// translation unit; the launcher it creates unpacks cuLaunchKernel-style `void** params` (one
// pointer per argument, pointing at the argument's value) into the kernel's typed arguments.
#pragma once

#include <stddef.h>
#include <type_traits>
#include <utility>

typedef void (*clip_sim_launcher)(void* kernel, void** params);

extern "C" void clip_sim_register(const char* name, void* kernel, clip_sim_launcher launcher,
                                  int paramCount, const int* paramSizes);

template <typename... Args> struct ClipSimKernel {
    static constexpr int sizes[sizeof...(Args) + 1] = {(int) sizeof(Args)..., 0};

    template <size_t... I> static void call(void* kernel, void** params, std::index_sequence<I...>) {
        ((void (*)(Args...)) kernel)(*static_cast<std::remove_cv_t<std::remove_reference_t<Args>>*>(params[I])...);
    }
    static void launch(void* kernel, void** params) { call(kernel, params, std::index_sequence_for<Args...>{}); }

    ClipSimKernel(const char* name, void (*kernel)(Args...)) {
        clip_sim_register(name, (void*) kernel, &launch, (int) sizeof...(Args), sizes);
    }
};

#define CLIP_SIM_REGISTER(name) static ClipSimKernel clip_sim_registered_##name(#name, &name);
