//! Creating or updating the stack and waiting for it.
//!
//! CreateStack for a new stack, UpdateStack for an existing one ("no updates" is a success), then
//! DescribeStacks until the status leaves `*_IN_PROGRESS`, reporting each new stack event. On a
//! failure the error carries every resource that failed during this operation with
//! CloudFormation's reason, the first thing an operator needs.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::types::{Capability, Parameter, StackEvent as CfnEvent};
use serde::Serialize;

use crate::{aws_error, DeployError, Result, CAPABILITIES};

#[derive(Debug, Clone)]
pub struct StackRequest {
    pub stack: String,
    pub template_body: String,
    /// Used instead of the body when set (templates over CloudFormation's inline limit).
    pub template_url: Option<String>,
    pub parameters: BTreeMap<String, String>,
    /// The CloudFormation service role the stack's operations run as (`RoleARN` of CreateStack
    /// and UpdateStack); `None` runs them with the caller's own credentials.
    /// <https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-iam-servicerole.html>
    pub role_arn: Option<String>,
    pub timeout: Duration,
    pub poll: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StackAction {
    Created,
    Updated,
    Unchanged,
}

#[derive(Debug, Clone)]
pub struct StackOutcome {
    pub action: StackAction,
    pub status: String,
    pub outputs: BTreeMap<String, String>,
}

/// One resource event, for progress lines.
#[derive(Debug, Clone, Serialize)]
pub struct StackEvent {
    pub elapsed_secs: f64,
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedResource {
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: String,
}

const OK: [&str; 2] = ["CREATE_COMPLETE", "UPDATE_COMPLETE"];

/// Creates or updates `req.stack` and waits for it to settle.
pub async fn deploy_stack(
    cfn: &aws_sdk_cloudformation::Client,
    req: &StackRequest,
    progress: &mut dyn FnMut(&StackEvent),
) -> Result<StackOutcome> {
    let started = Instant::now();
    let existing = describe(cfn, &req.stack).await?;
    // Events already there belong to earlier operations.
    let mut seen: HashSet<String> = if existing.is_some() {
        recent_events(cfn, &req.stack)
            .await?
            .into_iter()
            .filter_map(|e| e.event_id().map(str::to_string))
            .collect()
    } else {
        HashSet::new()
    };
    let caps: Vec<Capability> = CAPABILITIES.iter().map(|c| Capability::from(*c)).collect();
    let action = match existing {
        None => {
            let mut create = cfn
                .create_stack()
                .stack_name(&req.stack)
                .set_parameters(Some(parameters(req, &[])))
                .set_capabilities(Some(caps))
                .set_role_arn(req.role_arn.clone());
            create = match &req.template_url {
                Some(url) => create.template_url(url),
                None => create.template_body(&req.template_body),
            };
            create
                .send()
                .await
                .map_err(|e| aws_error(format!("cannot create stack {}", req.stack), e))?;
            StackAction::Created
        }
        Some(stack) => {
            let status = stack
                .stack_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default();
            if status == "ROLLBACK_COMPLETE" || status == "ROLLBACK_FAILED" {
                return Err(DeployError::StackBlocked {
                    stack: req.stack.clone(),
                    status,
                    what_to_do: format!(
                        "its first create failed and CloudFormation cannot update it; read its events, delete it \
                         (aws cloudformation delete-stack --stack-name {}; retained buckets, the table and log groups stay) and deploy again",
                        req.stack
                    ),
                });
            }
            if status.ends_with("_IN_PROGRESS") {
                return Err(DeployError::StackBlocked {
                    stack: req.stack.clone(),
                    status,
                    what_to_do:
                        "another operation is running; wait for it to finish and deploy again"
                            .into(),
                });
            }
            let deployed: Vec<(String, Option<String>)> = stack
                .parameters()
                .iter()
                .filter_map(|p| {
                    Some((
                        p.parameter_key()?.to_string(),
                        p.parameter_value().map(str::to_string),
                    ))
                })
                .collect();
            let wanted = parameters(req, &deployed);
            // A stack keeps the role it was last given: an update that names none leaves it.
            let same_role = req.role_arn.is_none() || stack.role_arn() == req.role_arn.as_deref();
            if same_role
                && same_parameters(&wanted, &deployed)
                && deployed_template(cfn, &req.stack).await? == req.template_body
            {
                return finish(
                    cfn,
                    req,
                    started,
                    StackAction::Unchanged,
                    &mut seen,
                    progress,
                )
                .await;
            }
            let mut update = cfn
                .update_stack()
                .stack_name(&req.stack)
                .set_parameters(Some(wanted))
                .set_capabilities(Some(caps))
                .set_role_arn(req.role_arn.clone());
            update = match &req.template_url {
                Some(url) => update.template_url(url),
                None => update.template_body(&req.template_body),
            };
            match update.send().await {
                Ok(_) => StackAction::Updated,
                Err(e) => {
                    let text = aws_sdk_cloudformation::error::DisplayErrorContext(&e).to_string();
                    if text.contains("No updates are to be performed") {
                        StackAction::Unchanged
                    } else {
                        return Err(aws_error(format!("cannot update stack {}", req.stack), e));
                    }
                }
            }
        }
    };

    finish(cfn, req, started, action, &mut seen, progress).await
}

/// Waits for the stack to settle, reporting each new event, and returns its outcome.
async fn finish(
    cfn: &aws_sdk_cloudformation::Client,
    req: &StackRequest,
    started: Instant,
    action: StackAction,
    seen: &mut HashSet<String>,
    progress: &mut dyn FnMut(&StackEvent),
) -> Result<StackOutcome> {
    loop {
        let stack = describe(cfn, &req.stack)
            .await?
            .ok_or_else(|| DeployError::Aws {
                what: format!("stack {}", req.stack),
                message: "disappeared while deploying".into(),
            })?;
        let mut new: Vec<CfnEvent> = recent_events(cfn, &req.stack)
            .await?
            .into_iter()
            .filter(|e| e.event_id().is_some_and(|id| !seen.contains(id)))
            .collect();
        new.reverse(); // oldest first
        for e in &new {
            seen.insert(e.event_id().unwrap_or_default().to_string());
            progress(&StackEvent {
                elapsed_secs: started.elapsed().as_secs_f64(),
                logical_id: e.logical_resource_id().unwrap_or_default().into(),
                resource_type: e.resource_type().unwrap_or_default().into(),
                status: e
                    .resource_status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                reason: e.resource_status_reason().unwrap_or_default().into(),
            });
        }
        let status = stack
            .stack_status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        if !status.ends_with("_IN_PROGRESS") {
            if OK.contains(&status.as_str()) {
                let outputs = stack
                    .outputs()
                    .iter()
                    .filter_map(|o| {
                        Some((o.output_key()?.to_string(), o.output_value()?.to_string()))
                    })
                    .collect();
                return Ok(StackOutcome {
                    action,
                    status,
                    outputs,
                });
            }
            return Err(DeployError::StackFailed {
                stack: req.stack.clone(),
                reason: stack.stack_status_reason().unwrap_or_default().to_string(),
                status,
                failed: failed_resources(cfn, &req.stack).await.unwrap_or_default(),
            });
        }
        if started.elapsed() >= req.timeout {
            return Err(DeployError::Timeout {
                stack: req.stack.clone(),
                status,
                secs: req.timeout.as_secs(),
            });
        }
        tokio::time::sleep(req.poll).await;
    }
}

/// Whether an update with `wanted` would leave every parameter as deployed: each is either kept
/// (`UsePreviousValue`) or set to the value the stack already has.
fn same_parameters(wanted: &[Parameter], deployed: &[(String, Option<String>)]) -> bool {
    wanted.iter().all(|p| {
        p.use_previous_value() == Some(true)
            || deployed.iter().any(|(k, v)| {
                Some(k.as_str()) == p.parameter_key() && v.as_deref() == p.parameter_value()
            })
    })
}

/// The template the stack runs now, as it was submitted (GetTemplate's `Original` stage).
/// An identical template with identical parameters is not sent again: AWS would refuse it with
/// "No updates are to be performed", and not every CloudFormation implementation does.
async fn deployed_template(cfn: &aws_sdk_cloudformation::Client, stack: &str) -> Result<String> {
    cfn.get_template()
        .stack_name(stack)
        .template_stage(aws_sdk_cloudformation::types::TemplateStage::Original)
        .send()
        .await
        .map(|o| o.template_body().unwrap_or_default().to_string())
        .map_err(|e| aws_error(format!("cannot read the template of stack {stack}"), e))
}

/// The request's parameters; on an update, every deployed parameter the request does not set
/// keeps its value (UpdateStack would otherwise reset it to the template default), unless the
/// new template no longer declares it.
///
/// A kept parameter is sent with the value DescribeStacks reports the stack using — which is
/// what `UsePreviousValue` resolves to on AWS — so the update does not depend on how a service
/// resolves `UsePreviousValue` for a parameter that was left at its default when the stack was
/// created (the local emulator fails there). A `NoEcho` parameter reads back masked (`****`),
/// so it alone is sent as `UsePreviousValue`.
/// <https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_Parameter.html>
fn parameters(req: &StackRequest, deployed: &[(String, Option<String>)]) -> Vec<Parameter> {
    let mut out: Vec<Parameter> = req
        .parameters
        .iter()
        .map(|(k, v)| {
            Parameter::builder()
                .parameter_key(k)
                .parameter_value(v)
                .build()
        })
        .collect();
    for (key, value) in deployed {
        // Parameters are top-level keys indented by two spaces under `Parameters:`.
        if !req.parameters.contains_key(key) && req.template_body.contains(&format!("\n  {key}:")) {
            let kept = Parameter::builder().parameter_key(key);
            out.push(match value {
                Some(v) if v != "****" => kept.parameter_value(v).build(),
                _ => kept.use_previous_value(true).build(),
            });
        }
    }
    out
}

async fn describe(
    cfn: &aws_sdk_cloudformation::Client,
    stack: &str,
) -> Result<Option<aws_sdk_cloudformation::types::Stack>> {
    match cfn.describe_stacks().stack_name(stack).send().await {
        Ok(out) => Ok(out.stacks().first().cloned()),
        Err(e) => {
            let text = aws_sdk_cloudformation::error::DisplayErrorContext(&e).to_string();
            if text.contains("does not exist") {
                Ok(None)
            } else {
                Err(aws_error(format!("cannot describe stack {stack}"), e))
            }
        }
    }
}

/// The newest page of the stack's events, newest first.
async fn recent_events(cfn: &aws_sdk_cloudformation::Client, stack: &str) -> Result<Vec<CfnEvent>> {
    cfn.describe_stack_events()
        .stack_name(stack)
        .send()
        .await
        .map(|o| o.stack_events().to_vec())
        .map_err(|e| aws_error(format!("cannot read the events of stack {stack}"), e))
}

/// Resources that failed in the latest operation: events newer than the stack's own latest
/// user-initiated `*_IN_PROGRESS` event.
async fn failed_resources(
    cfn: &aws_sdk_cloudformation::Client,
    stack: &str,
) -> Result<Vec<FailedResource>> {
    let mut failed = Vec::new();
    for e in recent_events(cfn, stack).await? {
        let status = e
            .resource_status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        let is_stack = e.resource_type() == Some("AWS::CloudFormation::Stack");
        if is_stack && (status == "CREATE_IN_PROGRESS" || status == "UPDATE_IN_PROGRESS") {
            break;
        }
        if status.ends_with("_FAILED") && !is_stack {
            failed.push(FailedResource {
                logical_id: e.logical_resource_id().unwrap_or_default().into(),
                resource_type: e.resource_type().unwrap_or_default().into(),
                status,
                reason: e.resource_status_reason().unwrap_or_default().into(),
            });
        }
    }
    failed.reverse();
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_keeps_deployed_parameters_it_does_not_set() {
        let req = StackRequest {
            stack: "lab".into(),
            template_body: "Parameters:\n  PipelineVersion:\n    Type: Number\n  AlarmEmail:\n    Type: String\n  Secret:\n    Type: String\n    NoEcho: true\n".into(),
            template_url: None,
            parameters: BTreeMap::from([("AlarmEmail".to_string(), "none".to_string())]),
            role_arn: None,
            timeout: Duration::from_secs(1),
            poll: Duration::from_secs(1),
        };
        let got = parameters(
            &req,
            &[
                ("PipelineVersion".into(), Some("2".into())),
                ("Gone".into(), Some("x".into())),
                ("AlarmEmail".into(), Some("ops@lab.example".into())),
                ("Secret".into(), Some("****".into())),
            ],
        );
        let shown: Vec<(String, Option<String>, Option<bool>)> = got
            .iter()
            .map(|p| {
                (
                    p.parameter_key().unwrap().to_string(),
                    p.parameter_value().map(str::to_string),
                    p.use_previous_value(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            vec![
                ("AlarmEmail".into(), Some("none".into()), None),
                ("PipelineVersion".into(), Some("2".into()), None),
                ("Secret".into(), None, Some(true)),
            ]
        );
    }

    #[test]
    fn an_update_is_needed_only_when_a_value_changes() {
        let deployed = vec![
            (
                "AlarmEmail".to_string(),
                Some("ops@lab.example".to_string()),
            ),
            ("PipelineVersion".to_string(), Some("1".to_string())),
        ];
        let set = |k: &str, v: &str| {
            Parameter::builder()
                .parameter_key(k)
                .parameter_value(v)
                .build()
        };
        let kept = Parameter::builder()
            .parameter_key("PipelineVersion")
            .use_previous_value(true)
            .build();
        assert!(same_parameters(
            &[
                set("AlarmEmail", "ops@lab.example"),
                set("PipelineVersion", "1")
            ],
            &deployed
        ));
        assert!(same_parameters(
            &[set("AlarmEmail", "ops@lab.example"), kept],
            &deployed
        ));
        assert!(!same_parameters(&[set("PipelineVersion", "2")], &deployed));
        assert!(!same_parameters(
            &[set("IngestCodeKey", "lambda/ingest-1.zip")],
            &deployed
        ));
    }
}
