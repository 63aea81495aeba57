//! The saved form of a certificate's origin ([`crate::store::CertificateOrigin`],
//! which the API shows too).

use crate::store::CertificateOrigin;

saved_enum! {
    /// Where a saved certificate came from.
    SavedOrigin for CertificateOrigin {
        Acme = "acme",
        Custom = "custom",
    }
}
