//! Every error type's variants that carry a cause, printed as the commands print them
//! (`{:#}`: the message, then each cause after `: `): no cause may be said twice, which is
//! what happens when a message also writes `{source}` of a field thiserror already reports.

use std::path::PathBuf;

use edge_tl::error::*;

fn io() -> std::io::Error {
    std::io::Error::from_raw_os_error(2)
}

fn p() -> PathBuf {
    PathBuf::from("/data/x.jpg")
}

fn check(error: impl std::error::Error + Send + Sync + 'static) {
    let text = format!("{:#}", anyhow::Error::new(error));
    let mut clauses: Vec<&str> = text.split(": ").collect();
    clauses.sort_unstable();
    for pair in clauses.windows(2) {
        assert_ne!(pair[0], pair[1], "said twice in {text:?}");
    }
}

fn toml_error() -> toml::de::Error {
    toml::from_str::<toml::Value>("a = ").unwrap_err()
}

fn json_error() -> serde_json::Error {
    serde_json::from_str::<serde_json::Value>("{").unwrap_err()
}

#[test]
fn no_error_says_its_cause_twice() {
    check(DecodeError::Read {
        path: p(),
        source: io(),
    });
    check(DecodeError::Corrupt {
        path: p(),
        source: image::ImageError::IoError(io()),
    });
    check(ModelError::Manifest {
        origin: "m.toml".into(),
        source: toml_error(),
    });
    check(ModelError::Read {
        path: p(),
        source: io(),
    });
    check(ModelError::Tract {
        name: "m".into(),
        what: "loading".into(),
        source: anyhow::anyhow!("bad graph"),
    });
    check(StoreError::Http {
        url: "http://h/m.onnx".into(),
        source: Box::new(ureq::Error::Io(io())),
    });
    check(StoreError::Io {
        path: p(),
        source: io(),
    });
    check(DatasetError::Read {
        path: p(),
        source: io(),
    });
    for e in [
        HeadError::Read {
            path: p(),
            source: io(),
        },
        HeadError::Parse {
            path: p(),
            source: json_error(),
        },
        HeadError::Write {
            path: p(),
            source: io(),
        },
    ] {
        check(TrainError::Head(e));
    }
    check(edge_tl::source::SourceError::Io {
        path: p(),
        source: io(),
    });
    check(edge_tl::live::LiveError::Source(
        edge_tl::source::SourceError::Io {
            path: p(),
            source: io(),
        },
    ));
    check(edge_tl::settings::file::FileError::Read {
        path: p(),
        source: io(),
    });
    check(edge_tl::dataset::capture::CaptureError::Write {
        path: p(),
        source: io(),
    });
    check(edge_tl::pipeline::PipelineError::Decode(
        DecodeError::Read {
            path: p(),
            source: io(),
        },
    ));
    check(edge_tl::model::layers::LayerError::Model(
        ModelError::Read {
            path: p(),
            source: io(),
        },
    ));
    check(edge_tl::source::jpeg_stream::StreamError::Io(io()));
    #[cfg(feature = "service")]
    {
        check(edge_tl::service::ServiceError::Bind {
            addr: "127.0.0.1:80".parse().unwrap(),
            source: io(),
        });
        check(edge_tl::service::teach::TeachError::Capture(
            edge_tl::dataset::capture::CaptureError::Write {
                path: p(),
                source: io(),
            },
        ));
    }
    #[cfg(feature = "grad")]
    {
        let compute = || edge_tl::grad::GradError::Compute {
            what: "the gradient".into(),
            source: candle_core::Error::Msg("shape mismatch".into()),
        };
        check(compute());
        check(edge_tl::finetune::FinetuneError::Grad(compute()));
        check(edge_tl::finetune::export::ExportError::Write {
            path: p(),
            source: io(),
        });
    }
}

#[test]
fn the_check_catches_a_repeated_cause() {
    #[derive(Debug, thiserror::Error)]
    #[error("cannot read: {source}")]
    struct Twice {
        source: std::io::Error,
    }
    let caught = std::panic::catch_unwind(|| check(Twice { source: io() }));
    assert!(caught.is_err());
}
