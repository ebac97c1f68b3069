//! Our implementation of Vector's VRL function `get_enrichment_table_record(table, condition,
//! [select], [case_sensitive])`: `table` must name a loaded table at compile time, `condition`
//! is an object of equality conditions, and the call fails when no row (or more than one)
//! matches, so programs use it as `row, err = get_enrichment_table_record(...)`.

use std::sync::Arc;

use vrl::compiler::prelude::*;

use super::{Table, Tables};

/// `get_enrichment_table_record` over a [`Tables`] registry.
#[derive(Debug, Clone)]
pub struct GetEnrichmentTableRecord {
    tables: Arc<Tables>,
}

impl GetEnrichmentTableRecord {
    /// The function, resolving table names in `tables`.
    pub fn new(tables: Arc<Tables>) -> Self {
        Self { tables }
    }
}

impl Function for GetEnrichmentTableRecord {
    fn identifier(&self) -> &'static str {
        "get_enrichment_table_record"
    }

    fn usage(&self) -> &'static str {
        "Searches an enrichment table for the one row that matches the condition (ids2's \
         implementation of Vector's function, for running the ECS program outside Vector)."
    }

    fn category(&self) -> &'static str {
        "Enrichment"
    }

    fn internal_failure_reasons(&self) -> &'static [&'static str] {
        &[
            "No row matches the condition.",
            "More than one row matches.",
        ]
    }

    fn return_kind(&self) -> u16 {
        kind::OBJECT
    }

    fn parameters(&self) -> &'static [Parameter] {
        const PARAMETERS: &[Parameter] = &[
            Parameter::required("table", kind::BYTES, "The enrichment table to search."),
            Parameter::required("condition", kind::OBJECT, "Column => value conditions."),
            Parameter::optional("select", kind::ARRAY, "Columns to return."),
            Parameter::optional("case_sensitive", kind::BOOLEAN, "Compare strings exactly."),
        ];
        PARAMETERS
    }

    fn examples(&self) -> &'static [Example] {
        &[]
    }

    fn compile(
        &self,
        state: &TypeState,
        _ctx: &mut FunctionCompileContext,
        arguments: ArgumentList,
    ) -> Compiled {
        let name = arguments.required_literal("table", state)?;
        let table = self
            .tables
            .get(&name.to_string_lossy())
            .cloned()
            .ok_or_else(|| function::Error::InvalidArgument {
                keyword: "table",
                value: name.clone(),
                error: "no enrichment table of this name is loaded",
            })?;
        let condition = arguments
            .required_object("condition")?
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let select = arguments.optional("select");
        let case_sensitive = arguments
            .optional_literal("case_sensitive", state)?
            .map_or(Ok(true), |v| {
                v.as_boolean().ok_or(function::Error::InvalidArgument {
                    keyword: "case_sensitive",
                    value: v.clone(),
                    error: "expected a boolean literal",
                })
            })?;
        Ok(RecordFn {
            table,
            condition,
            select,
            case_sensitive,
        }
        .as_expr())
    }
}

#[derive(Debug, Clone)]
struct RecordFn {
    table: Arc<dyn Table>,
    condition: Vec<(String, expression::Expr)>,
    select: Option<Box<dyn Expression>>,
    case_sensitive: bool,
}

impl FunctionExpression for RecordFn {
    fn resolve(&self, ctx: &mut Context) -> Resolved {
        let mut conditions = Vec::with_capacity(self.condition.len());
        for (column, expr) in &self.condition {
            conditions.push((column.clone(), expr.resolve(ctx)?));
        }
        let select = match &self.select {
            Some(expr) => Some(
                expr.resolve(ctx)?
                    .try_array()?
                    .iter()
                    .map(|v| v.to_string_lossy().into_owned())
                    .collect::<Vec<_>>(),
            ),
            None => None,
        };
        self.table
            .find_row(&conditions, self.case_sensitive, select.as_deref())
            .map(Value::Object)
            .map_err(ExpressionError::from)
    }

    fn type_def(&self, _: &TypeState) -> TypeDef {
        TypeDef::object(Collection::any()).fallible()
    }
}
