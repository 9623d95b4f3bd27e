#![no_std]
// The probe is the `fantrace-probe` binary; this library exists so `recorder` can name the
// package as a build-dependency and be rebuilt when it changes.
