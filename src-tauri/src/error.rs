//! The one error shape the front end sees: `{code, message, actions}` (plus the column of a
//! filter error).
//!
//! Library errors keep their own stable codes (`UploadError::code`, `CatalogError::code`); this
//! module only converts them at the boundary, it never invents new failure rules. What a view
//! offers beside an error (`actions`, e.g. "Open Settings") is the lab's rule
//! (`labpipe_lab::ErrorActions::of` the code), sent with the error so the front end only draws it.

use serde::Serialize;
use ts_rs::TS;

/// An error as the UI receives it. `code` is stable and machine-readable; `message` is the
/// library's own sentence (what failed, why, what to do).
#[derive(Debug, Clone, Serialize, TS, PartialEq)]
#[ts(export, export_to = "../../ui/src/lib/bindings/")]
pub struct AppError {
    pub code: String,
    pub message: String,
    /// For filter errors: 0-based character column and width of the offending part.
    pub column: Option<u32>,
    pub width: Option<u32>,
    /// What the view offers beside the error, from `code` (`labpipe_lab::ErrorActions::of`).
    pub actions: labpipe_lab::ErrorActions,
}

impl AppError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        AppError {
            code: code.into(),
            message: message.into(),
            column: None,
            width: None,
            actions: labpipe_lab::ErrorActions::of(code),
        }
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for AppError {}

pub type AppResult<T> = Result<T, AppError>;

impl From<labpipe_upload::UploadError> for AppError {
    fn from(e: labpipe_upload::UploadError) -> Self {
        AppError::new(e.code(), e.to_string())
    }
}

impl From<labpipe_lab::LabError> for AppError {
    fn from(e: labpipe_lab::LabError) -> Self {
        AppError::new(e.code(), e.to_string())
    }
}

impl From<labpipe_catalog::CatalogError> for AppError {
    fn from(e: labpipe_catalog::CatalogError) -> Self {
        AppError::new(&format!("catalog_{}", e.code()), e.to_string())
    }
}

impl From<labpipe_core::filter::FilterError> for AppError {
    fn from(e: labpipe_core::filter::FilterError) -> Self {
        AppError {
            column: Some(e.column as u32),
            width: Some(e.width as u32),
            ..AppError::new("filter", e.message.clone())
        }
    }
}

impl From<labpipe_core::scan::ScanError> for AppError {
    fn from(e: labpipe_core::scan::ScanError) -> Self {
        AppError::new("scan", e.to_string())
    }
}

impl From<labpipe_core::schema::SchemaError> for AppError {
    fn from(e: labpipe_core::schema::SchemaError) -> Self {
        AppError::new("schema", e.to_string())
    }
}

impl From<keyring::Error> for AppError {
    fn from(e: keyring::Error) -> Self {
        AppError::new(
            "keyring",
            format!(
                "the system keyring could not be used ({e}); unlock it (or start a Secret Service such as \
                 gnome-keyring), or store nothing here and LabPipe uses AWS_PROFILE, ~/.aws or environment credentials"
            ),
        )
    }
}

impl From<std::io::Error> for AppError {
    fn from(e: std::io::Error) -> Self {
        AppError::new("io", e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_errors_keep_their_column() {
        let schema = labpipe_core::LabSchema::default();
        let err = labpipe_core::filter::Filter::new("fatige > 3", &schema).unwrap_err();
        let app: AppError = err.into();
        assert_eq!(app.code, "filter");
        assert_eq!(app.column, Some(0));
        assert_eq!(app.width, Some(6));
        let json = serde_json::to_value(&app).unwrap();
        assert_eq!(json["code"], "filter");
        assert!(json["message"].as_str().unwrap().contains("fatigue"));
        assert_eq!(json["actions"]["open_settings"], false);
    }

    /// The front end draws "Open Settings" from what the error carries, never from its code.
    #[test]
    fn an_error_carries_what_the_view_offers() {
        let json = serde_json::to_value(AppError::new(
            "not_configured",
            "no catalog table is set; enter it in Settings",
        ))
        .unwrap();
        assert_eq!(json["actions"]["open_settings"], true);
        let json = serde_json::to_value(AppError::new("catalog_service", "throttled")).unwrap();
        assert_eq!(json["actions"]["open_settings"], false);
    }
}
