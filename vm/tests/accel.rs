use std::cell::Cell;

use sandkasten_vm::accel::{decide, Probe};
use sandkasten_vm::{Accel, AccelRequest};

/// A probe that records whether it ran.
fn probe(outcome: Probe, ran: &Cell<bool>) -> impl FnOnce() -> Probe + '_ {
    move || {
        ran.set(true);
        outcome
    }
}

#[test]
fn tcg_request_never_probes() {
    let ran = Cell::new(false);
    let d = decide(AccelRequest::Tcg, Ok(()), probe(Probe::Usable, &ran));
    assert_eq!(d.accel, Accel::Tcg);
    assert!(!ran.get());
}

#[test]
fn kvm_request_is_taken_on_its_word() {
    let ran = Cell::new(false);
    let d = decide(AccelRequest::Kvm, Err("/dev/kvm: No such file".into()), probe(Probe::Usable, &ran));
    assert_eq!(d.accel, Accel::Kvm);
    assert!(!ran.get());
}

#[test]
fn auto_without_device_falls_back_without_probing() {
    let ran = Cell::new(false);
    let d = decide(AccelRequest::Auto, Err("/dev/kvm: Permission denied".into()), probe(Probe::Usable, &ran));
    assert_eq!(d.accel, Accel::Tcg);
    assert!(!ran.get());
    assert_eq!(d.note, "KVM unusable here (/dev/kvm: Permission denied), using TCG");
}

#[test]
fn auto_trusts_only_a_probe_boot() {
    let ran = Cell::new(false);
    let d = decide(AccelRequest::Auto, Ok(()), probe(Probe::Usable, &ran));
    assert!(ran.get());
    assert_eq!(d.accel, Accel::Kvm);

    let spins = Probe::Unusable("the kernel did not start within 3 s under KVM".into());
    let d = decide(AccelRequest::Auto, Ok(()), probe(spins, &ran));
    assert_eq!(d.accel, Accel::Tcg);
    assert!(d.note.starts_with("KVM unusable here (the kernel did not start"), "{}", d.note);
    assert!(d.note.ends_with("using TCG"));
}

#[test]
fn deadlines_scale_with_the_accelerator() {
    assert!(Accel::Tcg.default_timeout() >= 4 * Accel::Kvm.default_timeout());
    assert_eq!("auto".parse::<AccelRequest>().unwrap(), AccelRequest::Auto);
    assert!("xen".parse::<AccelRequest>().is_err());
}
