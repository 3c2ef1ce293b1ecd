package org.clipj.runtime;

/** Where a tensor's storage lives. */
public enum Device {
    CPU, CUDA
}
