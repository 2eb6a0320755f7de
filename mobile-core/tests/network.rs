//! The client's network edge: HTTPS with a programme's own CA, a server that is down, a
//! code the server refuses. Nothing is stored when enrolment fails.

mod common;

use common::*;
use outpost_core::Error;

#[test]
fn https_with_the_programmes_ca_and_refused_without_it() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let server = Server::start_tls(20, &cert.cert.pem(), &cert.signing_key.serialize_pem());
    assert!(server.base.starts_with("https://"));
    let port = server.base.rsplit(':').next().unwrap();
    let url = format!("https://localhost:{port}");

    // A certificate no public CA signed is refused unless the programme's CA is given.
    let d = Device::new();
    let code = server.code("agent.n-mz", "N-MZ-01");
    match d
        .core
        .enrol(url.clone(), code.clone(), PIN.into(), "phone".into(), None)
    {
        Err(Error::Network { reason }) => {
            assert!(reason.to_lowercase().contains("certificate"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(!d.core.status().unwrap().enrolled);
    d.core
        .enrol(url, code, PIN.into(), "phone".into(), Some(cert.cert.pem()))
        .unwrap();
    let report = d.core.sync(None).unwrap();
    assert!(report.replica_rows > 0 && report.status.up_to_date);
}

#[test]
fn a_server_that_is_down_or_refuses_the_code_leaves_the_phone_as_it_was() {
    let server = Server::start(20);
    let d = Device::new();
    // Nothing listens on this port (it was just freed).
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}", free.local_addr().unwrap());
    drop(free);
    let code = server.code("agent.n-mz", "N-MZ");
    assert!(matches!(
        d.core
            .enrol(down, code.clone(), PIN.into(), "p".into(), None),
        Err(Error::Network { .. })
    ));
    match d.core.enrol(
        server.base.clone(),
        "AAAA-BBBB-CCCC".into(),
        PIN.into(),
        "p".into(),
        None,
    ) {
        Err(Error::ServerRefused { code, reason }) => {
            assert_eq!(code, "ENROLMENT_CODE_INVALID", "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        d.core
            .enrol("ftp://x".into(), code.clone(), PIN.into(), "p".into(), None),
        Err(Error::Invalid { .. })
    ));
    assert!(!d.core.status().unwrap().enrolled);
    assert!(matches!(d.core.sync(None), Err(Error::NotEnrolled)));
    // The code was not spent by any of that.
    d.core
        .enrol(
            server.base.clone(),
            code.clone(),
            PIN.into(),
            "p".into(),
            None,
        )
        .unwrap();
    // And a used code is refused for another phone.
    let other = Device::new();
    match other
        .core
        .enrol(server.base.clone(), code, PIN.into(), "p".into(), None)
    {
        Err(Error::ServerRefused { code, .. }) => assert_eq!(code, "ENROLMENT_CODE_USED"),
        other => panic!("{other:?}"),
    }
}
