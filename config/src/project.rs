//! Projects: a project groups apps; it is a name and a description.

use serde::{Deserialize, Serialize};

use crate::names::validate_name;
use crate::FieldError;

/// A project groups apps; it is a name and a description.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProjectInput {
    /// DNS label: 1-63 of a-z, 0-9, '-'.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 63,
            pattern = "^[a-z]([a-z0-9-]*[a-z0-9])?$"
        )
    )]
    pub name: String,
    /// Free text shown in the panel.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 1000))]
    pub description: Option<String>,
}

/// A validated project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProjectSpec {
    /// The project's name.
    pub name: String,
    /// Free text, at most 1,000 characters.
    pub description: String,
}

impl ProjectInput {
    /// Validates the input into a project.
    pub fn validate(self) -> Result<ProjectSpec, FieldError> {
        validate_name("name", &self.name)?;
        let description = self.description.unwrap_or_default();
        validate_description(&description)?;
        Ok(ProjectSpec {
            name: self.name,
            description,
        })
    }
}

/// Checks a project's description.
pub fn validate_description(description: &str) -> Result<(), FieldError> {
    if description.chars().count() > 1000 {
        return Err(FieldError::new(
            "description",
            "is longer than 1000 characters; shorten it",
        ));
    }
    Ok(())
}
