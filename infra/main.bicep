// Microsoft 365 mail gateway on Azure Functions: everything the Function App needs, in one resource group.
//
//   az deployment group create -g <rg> -f infra/main.bicep -p infra/main.parameters.json
//
// Provisions a Flex Consumption (FC1) Linux Function App on Node 22 (or 24) running as one user-assigned managed
// identity; a storage account without shared keys (host storage, deployment package, the gateway's tables and
// queues); a Key Vault in RBAC mode for the app credential; Log Analytics + Application Insights with Entra
// authentication, receiving the function app logs and the Key Vault audit log; the role assignments between them;
// every app setting the gateway reads (shared/platform/config.ts SETTINGS, source 'app'); and, optionally, the Entra
// app registration itself and network isolation (VNet integration + private endpoints).
// See infra/README.md.

targetScope = 'resourceGroup'

metadata description = 'Microsoft 365 mail gateway on Azure Functions (Flex Consumption, Node 22, managed identity, Key Vault, Application Insights).'

// ------------------------------------------------------------------------------------------------------------
// General
// ------------------------------------------------------------------------------------------------------------

@description('Short name the resource names are derived from: letters, digits and hyphens, starting with a letter (hyphens are dropped where a service forbids them).')
@minLength(2)
@maxLength(16)
param baseName string = 'mailgw'

@description('Azure region of every resource; must offer Flex Consumption (az functionapp list-flexconsumption-locations).')
param location string = resourceGroup().location

@description('Tags applied to every resource.')
param tags object = {}

@description('Optional explicit Function App name (globally unique). Empty: func-<baseName>-<hash>.')
param functionAppName string = ''

@description('Optional explicit storage account name (3-24 lowercase letters and digits, globally unique). Empty: st<baseName><hash>.')
param storageAccountName string = ''

@description('Optional explicit Key Vault name (3-24 letters, digits and hyphens, globally unique). Empty: kv<baseName><hash>.')
param keyVaultName string = ''

// ------------------------------------------------------------------------------------------------------------
// Function App (Flex Consumption)
// ------------------------------------------------------------------------------------------------------------

@description('Upper bound of instances the app scales out to (Flex Consumption: 1-1000). Each instance keeps at most 4 Graph requests in flight per mailbox, so this also bounds the load on a mailbox.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Memory of each instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Node.js major version of the Functions runtime (Node 20 is out of support on Azure).')
@allowed([
  '22'
  '24'
])
param nodeVersion string = '22'

@description('Storage account redundancy.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
])
param storageSkuName string = 'Standard_LRS'

// ------------------------------------------------------------------------------------------------------------
// Gateway configuration (app settings read by shared/config.ts)
// ------------------------------------------------------------------------------------------------------------

@description('AZURE_CLOUD: the Microsoft cloud of the tenant (its authority host, Graph URL and scope come from the gateway\'s cloud table).')
@allowed([
  'global'
  'gcc-high'
  'dod'
  'china'
])
param azureCloud string = 'global'

@description('ENTRA_TENANT_ID: tenant of the app registration (GUID or verified domain). Default: the tenant of this deployment.')
param entraTenantId string = tenant().tenantId

@description('ENTRA_CLIENT_ID: application (client) id of an existing app registration. Ignored when createAppRegistration is true (the new app\'s id is used); required otherwise.')
param entraClientId string = ''

@description('APP_CREDENTIAL_NAME: name of the Key Vault certificate (or secret) holding the app credential.')
@minLength(1)
@maxLength(127)
param appCredentialName string = 'mail-gateway-credential'

@description('CREDENTIAL_REFRESH_MINUTES: how often the gateway checks Key Vault for a new credential version.')
@minValue(1)
@maxValue(1440)
param credentialRefreshMinutes int = 60

@description('ENTRA_AUTHORITY_HOST: override of the cloud\'s Entra authority host (https). Empty: use the cloud table.')
param entraAuthorityHost string = ''

@description('GRAPH_BASE_URL: override of the cloud\'s Microsoft Graph root URL (https, no version). Empty: use the cloud table.')
param graphBaseUrl string = ''

@description('GRAPH_SCOPE: override of the scope requested for Graph tokens (ends with /.default). Empty: use the cloud table.')
param graphScope string = ''

@description('ALLOWED_SENDERS: mailboxes callers may send as (comma-separated addresses and *@domain patterns).')
param allowedSenders string

@description('MAX_SEND_REQUEST_MB: largest send request body in MB (1-100).')
@minValue(1)
@maxValue(100)
param maxSendRequestMb int = 50

@description('IDEMPOTENCY_TTL_HOURS: how long Idempotency-Key results are kept.')
param idempotencyTtlHours int = 24

@description('GRAPH_MAX_WAIT_SECONDS: longest total Retry-After wait per Graph call before answering 503.')
param graphMaxWaitSeconds int = 30

@description('GRAPH_PERMISSION_CHECK: token = refuse sends whose token lacks Mail.Send; off = let Graph decide (Exchange RBAC for Applications / Set-MailboxScope.ps1, whose grants never appear in the token). Default: follows grantMailPermissionsTenantWide.')
@allowed([
  'token'
  'off'
])
param graphPermissionCheck string = grantMailPermissionsTenantWide ? 'token' : 'off'

@description('WEBHOOK_BASE_URL: https origin Graph calls back. Empty = the Function App\'s own default host name; set it when a custom domain or gateway fronts the app.')
param webhookBaseUrl string = ''

@description('ALLOWED_WATCH_MAILBOXES: mailboxes that may be watched (comma-separated addresses and *@domain patterns); empty = none.')
param allowedWatchMailboxes string = ''

@description('ALLOWED_READ_MAILBOXES: mailboxes whose mail callers may read, answer and file through the message API (comma-separated addresses and *@domain patterns); empty = none.')
param allowedReadMailboxes string = ''

@description('RENEWAL_SCHEDULE: NCRONTAB schedule of the subscription renewal timer (UTC).')
param renewalSchedule string = '0 0 * * * *'

@description('RENEWAL_WINDOW_HOURS: renew subscriptions that expire within this many hours, or within half their granted lifetime if less.')
@minValue(1)
@maxValue(168)
param renewalWindowHours int = 48

@description('POLL_INTERVAL_SECONDS: how often a mailbox watched by polling is read with the messages delta query.')
@minValue(15)
@maxValue(3600)
param pollIntervalSeconds int = 60

@description('RECONCILE_INTERVAL_MINUTES: how often a mailbox watched by push is also read by delta (reconciliation).')
@minValue(1)
@maxValue(1440)
param reconcileIntervalMinutes int = 15

@description('MAILBOX_MESSAGES_PER_MINUTE: messages the outbox processor sends per minute per mailbox (Exchange Online allows 30).')
@minValue(1)
@maxValue(10000)
param mailboxMessagesPerMinute int = 30

@description('MAILBOX_RECIPIENTS_PER_DAY: recipients per mailbox in any 24 h (Exchange Online allows 10,000).')
@minValue(1)
@maxValue(1000000)
param mailboxRecipientsPerDay int = 10000

@description('TENANT_EXTERNAL_RECIPIENTS_PER_DAY: external recipients of all mailboxes of the tenant in any 24 h, or off (Exchange Online allows 500 x licences^0.7 + 9,500).')
param tenantExternalRecipientsPerDay string = 'off'

@description('TENANT_DOMAINS: the tenant\'s accepted domains, comma-separated; recipients outside them are external. Needed when tenantExternalRecipientsPerDay is not off.')
param tenantDomains string = ''

@description('OUTBOX_MAX_AGE_HOURS: how long the outbox processor keeps trying a mail before marking it failed.')
@minValue(1)
@maxValue(168)
param outboxMaxAgeHours int = 24

@description('BOUNCE_TRACKING: on watches the Inbox of every mailbox the outbox sends from for non-delivery reports only (mail.bounced; needs Mail.Read); off reports bounces only for watched mailboxes.')
@allowed([
  'on'
  'off'
])
param bounceTracking string = 'off'

@description('EVENTS_WEBHOOK_URL: optional https URL that also receives mail events, signed per Standard Webhooks. Its signing secret is read from the Key Vault secret eventsSigningSecretName through a Key Vault reference.')
param eventsWebhookUrl string = ''

@description('Name of the Key Vault secret holding the Standard Webhooks signing secret (whsec_...), used when eventsWebhookUrl is set.')
param eventsSigningSecretName string = 'events-signing-secret'

// ------------------------------------------------------------------------------------------------------------
// Key Vault
// ------------------------------------------------------------------------------------------------------------

@description('Turn on Key Vault purge protection (recommended for production; cannot be turned off again).')
param keyVaultEnablePurgeProtection bool = true

@description('Days a deleted vault or credential stays recoverable (7-90; fixed once the vault exists). Soft delete itself is always on.')
@minValue(7)
@maxValue(90)
param keyVaultSoftDeleteRetentionInDays int = 90

@description('Optional object id of the deploying admin (user, group or service principal) that uploads and rotates the credential: gets Key Vault Certificates Officer and Secrets Officer. Empty: none.')
param adminPrincipalId string = ''

@description('Type of adminPrincipalId.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param adminPrincipalType string = 'User'

// ------------------------------------------------------------------------------------------------------------
// Monitoring
// ------------------------------------------------------------------------------------------------------------

@description('Days Log Analytics keeps data.')
@minValue(30)
@maxValue(730)
param logRetentionInDays int = 30

// ------------------------------------------------------------------------------------------------------------
// Optional: the Entra app registration (Microsoft Graph Bicep extension; public cloud only)
// ------------------------------------------------------------------------------------------------------------

@description('Create the app registration, its service principal, certificate credential and Microsoft Graph app role assignments (admin consent). Needs Entra rights: see infra/README.md.')
param createAppRegistration bool = false

@description('Display name of the app registration.')
param appRegistrationDisplayName string = 'Mail gateway (${baseName})'

@description('Immutable unique name (alternate key) of the app registration; keep it stable across deployments.')
param appRegistrationUniqueName string = 'mail-gateway-${toLower(baseName)}-${uniqueString(resourceGroup().id, baseName)}'

@description('Base64 (DER) of the public certificate the app authenticates with; its private key goes to Key Vault as APP_CREDENTIAL_NAME.')
param appCertificateBase64 string = ''

@description('Start of validity of appCertificateBase64 (ISO 8601; az keyvault certificate show --query attributes.notBefore). Empty: Entra reads it from the certificate.')
param appCertificateStartDateTime string = ''

@description('End of validity of appCertificateBase64 (ISO 8601; az keyvault certificate show --query attributes.expires). Empty: Entra reads it from the certificate.')
param appCertificateEndDateTime string = ''

@description('Base64 (DER) of the previous certificate, kept valid while rotating. Empty otherwise.')
param previousAppCertificateBase64 string = ''

@description('Start of validity of previousAppCertificateBase64 (ISO 8601). Empty: Entra reads it from the certificate.')
param previousAppCertificateStartDateTime string = ''

@description('End of validity of previousAppCertificateBase64 (ISO 8601). Empty: Entra reads it from the certificate.')
param previousAppCertificateEndDateTime string = ''

@description('Grant Mail.ReadWrite for large attachments (3 MB or more, sent through a draft) and the outbox lookup of an interrupted send. Off: attachments of 3 MB or more fail for want of the permission.')
param featureLargeAttachments bool = true

@description('Grant what watching needs (Mail.ReadBasic.All, or the Mail.Read granted for reading). Default: on when allowedWatchMailboxes is set.')
param featureWatch bool = !empty(allowedWatchMailboxes)

@description('Grant Mail.Read for reading bodies, attachments and MIME: the message API and content in events (PUT /api/mailboxes/{mailbox} with content). Default: on when allowedReadMailboxes is set; turn it on for content in events without the message API.')
param featureReadMail bool = !empty(allowedReadMailboxes)

@description('Grant Mail.ReadWrite for acting on messages (mark, flag, move, delete) and reply/forward drafts. Default: on when allowedReadMailboxes is set.')
param featureMailActions bool = !empty(allowedReadMailboxes)

@description('Whether the app holds the Mail.* permissions of the features above tenant-wide in Entra ID. With createAppRegistration: true declares and grants them, false leaves them out (Exchange Online RBAC for Applications, infra/Set-MailboxScope.ps1, scopes them instead). False never REVOKES an earlier grant (ARM does not delete in incremental mode): run Set-MailboxScope.ps1 -RemoveTenantWideGrant. Also sets the default of graphPermissionCheck (true: token, false: off).')
param grantMailPermissionsTenantWide bool = true

// ------------------------------------------------------------------------------------------------------------
// Optional: network isolation
// ------------------------------------------------------------------------------------------------------------

@description('Network isolation: VNet integration for the Function App and private endpoints (with private DNS zones) for the storage account (blob, queue, table) and the Key Vault, whose public endpoints are then closed. Off by default.')
param networkIsolation bool = false

@description('Address space of the virtual network (networkIsolation only).')
param vnetAddressPrefix string = '10.40.0.0/16'

@description('Integration subnet of the Function App, delegated to Microsoft.App/environments (networkIsolation only).')
param appSubnetPrefix string = '10.40.0.0/26'

@description('Subnet of the private endpoints (networkIsolation only).')
param privateEndpointSubnetPrefix string = '10.40.1.0/27'

@description('Public IPv4 addresses or CIDR ranges that may still reach the Key Vault under networkIsolation, e.g. the admin who uploads and rotates the credential. Empty: only the virtual network.')
param keyVaultAllowedIpRanges array = []

// ------------------------------------------------------------------------------------------------------------
// Names
// ------------------------------------------------------------------------------------------------------------

var suffix = uniqueString(resourceGroup().id, baseName)
var lowerBase = toLower(baseName)
var compactBase = replace(lowerBase, '-', '')

var names = {
  identity: 'id-${lowerBase}-${suffix}'
  plan: 'plan-${lowerBase}-${suffix}'
  functionApp: empty(functionAppName) ? 'func-${lowerBase}-${take(suffix, 10)}' : functionAppName
  storage: empty(storageAccountName) ? 'st${take(compactBase, 9)}${suffix}' : storageAccountName
  keyVault: empty(keyVaultName) ? 'kv${take(compactBase, 8)}${suffix}' : keyVaultName
  logAnalytics: 'log-${lowerBase}-${suffix}'
  appInsights: 'appi-${lowerBase}-${suffix}'
  vnet: 'vnet-${lowerBase}-${suffix}'
}

// The blob container, tables and queues the app uses: the single place these names are defined. A test
// (test/tooling/infraLayout.test.ts) holds it against the functions' registered queues and the tables the code opens.
var storageLayout = {
  deploymentContainer: 'app-package'
  containers: [
    'outbox'
  ]
  tables: [
    'idempotency'
    'subscriptions'
    'publishedEvents'
    'outbox'
    'mailboxpacing'
  ]
  queues: [
    'graph-notifications'
    'graph-notifications-poison'
    'mailbox-poll'
    'mailbox-poll-poison'
    'mail-events'
    'mail-outbox'
    'mail-outbox-poison'
    'mail-outbox-paced'
    'mail-outbox-paced-poison'
  ]
}

// ------------------------------------------------------------------------------------------------------------
// Resources
// ------------------------------------------------------------------------------------------------------------

module identity 'modules/identity.bicep' = {
  name: 'mailgw-identity'
  params: {
    name: names.identity
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'mailgw-storage'
  params: {
    name: names.storage
    location: location
    tags: tags
    skuName: storageSkuName
    deploymentContainerName: storageLayout.deploymentContainer
    containerNames: storageLayout.containers
    tableNames: storageLayout.tables
    queueNames: storageLayout.queues
    principalId: identity.outputs.principalId
    publicNetworkAccess: !networkIsolation
  }
}

module keyVault 'modules/keyVault.bicep' = {
  name: 'mailgw-keyvault'
  params: {
    name: names.keyVault
    location: location
    tags: tags
    enablePurgeProtection: keyVaultEnablePurgeProtection
    softDeleteRetentionInDays: keyVaultSoftDeleteRetentionInDays
    appPrincipalId: identity.outputs.principalId
    adminPrincipalId: adminPrincipalId
    adminPrincipalType: adminPrincipalType
    logAnalyticsWorkspaceId: monitoring.outputs.workspaceId
    publicNetworkAccess: !networkIsolation
    allowedIpRanges: keyVaultAllowedIpRanges
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'mailgw-monitoring'
  params: {
    workspaceName: names.logAnalytics
    appInsightsName: names.appInsights
    location: location
    tags: tags
    retentionInDays: logRetentionInDays
    principalId: identity.outputs.principalId
  }
}

module network 'modules/network.bicep' = if (networkIsolation) {
  name: 'mailgw-network'
  params: {
    name: names.vnet
    location: location
    tags: tags
    addressPrefix: vnetAddressPrefix
    appSubnetPrefix: appSubnetPrefix
    privateEndpointSubnetPrefix: privateEndpointSubnetPrefix
    storageAccountId: storage.outputs.id
    keyVaultId: keyVault.outputs.id
  }
}

module appRegistration 'modules/appRegistration.bicep' = if (createAppRegistration) {
  name: 'mailgw-appregistration'
  params: {
    uniqueName: appRegistrationUniqueName
    displayName: appRegistrationDisplayName
    certificateBase64: appCertificateBase64
    certificateStartDateTime: appCertificateStartDateTime
    certificateEndDateTime: appCertificateEndDateTime
    previousCertificateBase64: previousAppCertificateBase64
    previousCertificateStartDateTime: previousAppCertificateStartDateTime
    previousCertificateEndDateTime: previousAppCertificateEndDateTime
    grantMailPermissionsTenantWide: grantMailPermissionsTenantWide
    featureLargeAttachments: featureLargeAttachments
    featureWatch: featureWatch
    featureReadMail: featureReadMail
    featureMailActions: featureMailActions
  }
}

var resolvedClientId = createAppRegistration ? appRegistration!.outputs.appId : entraClientId

// ------------------------------------------------------------------------------------------------------------
// App settings: the ONE place the Function App's settings are defined, one 'NAME': value per line.
// Every setting of shared/platform/config.ts SETTINGS whose source is 'app' is here; the platform ones
// (IDENTITY_ENDPOINT, IDENTITY_HEADER) are not. Flex Consumption rejects FUNCTIONS_WORKER_RUNTIME,
// WEBSITE_NODE_DEFAULT_VERSION and WEBSITE_RUN_FROM_PACKAGE (the runtime is in functionAppConfig): never add them.
// Empty values mean "not set" to the gateway's config (e.g. use the cloud table).
// ------------------------------------------------------------------------------------------------------------

var appSettings = {
  'AZURE_CLOUD': azureCloud
  'ENTRA_TENANT_ID': entraTenantId
  'ENTRA_CLIENT_ID': resolvedClientId
  'KEY_VAULT_URL': keyVault.outputs.vaultUri
  'APP_CREDENTIAL_NAME': appCredentialName
  'MANAGED_IDENTITY_CLIENT_ID': identity.outputs.clientId
  'CREDENTIAL_REFRESH_MINUTES': string(credentialRefreshMinutes)
  'ENTRA_AUTHORITY_HOST': entraAuthorityHost
  'GRAPH_BASE_URL': graphBaseUrl
  'GRAPH_SCOPE': graphScope
  'NODE_EXTRA_CA_CERTS': ''
  'ALLOWED_SENDERS': allowedSenders
  'MAX_SEND_REQUEST_MB': string(maxSendRequestMb)
  'IDEMPOTENCY_TTL_HOURS': string(idempotencyTtlHours)
  'GRAPH_MAX_WAIT_SECONDS': string(graphMaxWaitSeconds)
  'GRAPH_PERMISSION_CHECK': graphPermissionCheck
  'WEBHOOK_BASE_URL': webhookBaseUrl
  'ALLOWED_WATCH_MAILBOXES': allowedWatchMailboxes
  'ALLOWED_READ_MAILBOXES': allowedReadMailboxes
  'RENEWAL_SCHEDULE': renewalSchedule
  'RENEWAL_WINDOW_HOURS': string(renewalWindowHours)
  'POLL_INTERVAL_SECONDS': string(pollIntervalSeconds)
  'RECONCILE_INTERVAL_MINUTES': string(reconcileIntervalMinutes)
  'MAILBOX_MESSAGES_PER_MINUTE': string(mailboxMessagesPerMinute)
  'MAILBOX_RECIPIENTS_PER_DAY': string(mailboxRecipientsPerDay)
  'TENANT_EXTERNAL_RECIPIENTS_PER_DAY': tenantExternalRecipientsPerDay
  'TENANT_DOMAINS': tenantDomains
  'OUTBOX_MAX_AGE_HOURS': string(outboxMaxAgeHours)
  'BOUNCE_TRACKING': bounceTracking
  'EVENTS_WEBHOOK_URL': eventsWebhookUrl
  'EVENTS_SIGNING_SECRET': empty(eventsWebhookUrl) ? '' : '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.vaultUri}secrets/${eventsSigningSecretName})'
  'AzureWebJobsStorage__accountName': storage.outputs.name
  'AzureWebJobsStorage__credential': 'managedidentity'
  'AzureWebJobsStorage__clientId': identity.outputs.clientId
  'AzureWebJobsStorage__blobServiceUri': storage.outputs.blobServiceUri
  'AzureWebJobsStorage__queueServiceUri': storage.outputs.queueServiceUri
  'AzureWebJobsStorage__tableServiceUri': storage.outputs.tableServiceUri
  'APPLICATIONINSIGHTS_CONNECTION_STRING': monitoring.outputs.connectionString
  'APPLICATIONINSIGHTS_AUTHENTICATION_STRING': 'ClientId=${identity.outputs.clientId};Authorization=AAD'
}

module functionApp 'modules/functionApp.bicep' = {
  name: 'mailgw-functionapp'
  params: {
    name: names.functionApp
    planName: names.plan
    location: location
    tags: tags
    identityId: identity.outputs.id
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    nodeVersion: nodeVersion
    appSettings: appSettings
    logAnalyticsWorkspaceId: monitoring.outputs.workspaceId
    virtualNetworkSubnetId: networkIsolation ? network!.outputs.appSubnetId : ''
  }
}

// ------------------------------------------------------------------------------------------------------------
// Outputs
// ------------------------------------------------------------------------------------------------------------

@description('Function App name: func azure functionapp publish <this>.')
output functionAppName string = functionApp.outputs.name

@description('Default host name of the Function App.')
output functionAppDefaultHostname string = functionApp.outputs.defaultHostname

@description('Client id of the managed identity (MANAGED_IDENTITY_CLIENT_ID).')
output managedIdentityClientId string = identity.outputs.clientId

@description('Object id of the managed identity.')
output managedIdentityPrincipalId string = identity.outputs.principalId

@description('Key Vault URI (KEY_VAULT_URL).')
output keyVaultUri string = keyVault.outputs.vaultUri

@description('Key Vault name: upload the credential here as APP_CREDENTIAL_NAME.')
output keyVaultName string = keyVault.outputs.name

@description('Name of the Key Vault certificate/secret the app reads.')
output appCredentialName string = appCredentialName

@description('Storage account name.')
output storageAccountName string = storage.outputs.name

@description('Client id the app uses (ENTRA_CLIENT_ID).')
output entraClientId string = resolvedClientId

@description('Client id of the app registration created by this deployment (empty when createAppRegistration is false).')
output appRegistrationClientId string = createAppRegistration ? appRegistration!.outputs.appId : ''

@description('Virtual network resource id (empty when networkIsolation is false).')
output virtualNetworkId string = networkIsolation ? network!.outputs.id : ''

@description('Object id of the created service principal, for infra/Set-MailboxScope.ps1 -ObjectId (empty when createAppRegistration is false).')
output appRegistrationServicePrincipalObjectId string = createAppRegistration ? appRegistration!.outputs.servicePrincipalObjectId : ''
