// Optional network isolation (main.bicep networkIsolation=true): a virtual network whose integration subnet carries
// the Function App's outbound traffic, private endpoints for the storage account (blob, queue, table) and the Key
// Vault, and the private DNS zones that make their usual host names resolve to those endpoints inside the network.
//
// Microsoft Graph, Entra ID and Application Insights ingestion stay public Microsoft endpoints: the app reaches
// them through the integration subnet's outbound internet access.

@description('Virtual network name.')
param name string

@description('Azure region (the same as the Function App: VNet integration needs a network in the app\'s region).')
param location string

@description('Tags applied to every resource of this module.')
param tags object = {}

@description('Address space of the virtual network.')
param addressPrefix string = '10.40.0.0/16'

@description('Subnet for the Function App\'s virtual network integration, delegated to Microsoft.App/environments (Flex Consumption); /26 or larger leaves room to scale out.')
param appSubnetPrefix string = '10.40.0.0/26'

@description('Subnet holding the private endpoints.')
param privateEndpointSubnetPrefix string = '10.40.1.0/27'

@description('Resource id of the storage account that gets blob, queue and table private endpoints.')
param storageAccountId string

@description('Resource id of the Key Vault that gets a private endpoint.')
param keyVaultId string

var appSubnetName = 'snet-app'
var privateEndpointSubnetName = 'snet-private-endpoints'

// One private endpoint per sub-resource (group id), each registered in the zone its host names resolve through.
// Zone names follow the cloud: environment() gives the storage suffix and the vault DNS suffix (".vault.azure.net"
// in the public cloud, whose private zone is "privatelink.vaultcore.azure.net").
var endpoints = [
  {
    name: 'blob'
    targetId: storageAccountId
    groupId: 'blob'
    zone: 'privatelink.blob.${environment().suffixes.storage}'
  }
  {
    name: 'queue'
    targetId: storageAccountId
    groupId: 'queue'
    zone: 'privatelink.queue.${environment().suffixes.storage}'
  }
  {
    name: 'table'
    targetId: storageAccountId
    groupId: 'table'
    zone: 'privatelink.table.${environment().suffixes.storage}'
  }
  {
    name: 'vault'
    targetId: keyVaultId
    groupId: 'vault'
    zone: 'privatelink${replace(environment().suffixes.keyvaultDns, '.vault.', '.vaultcore.')}'
  }
]

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        name: appSubnetName
        properties: {
          addressPrefix: appSubnetPrefix
          delegations: [
            {
              name: 'flex-consumption'
              properties: {
                // Flex Consumption runs on the Container Apps platform: this delegation, not Microsoft.Web/serverFarms.
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
        }
      }
      {
        name: privateEndpointSubnetName
        properties: {
          addressPrefix: privateEndpointSubnetPrefix
          privateEndpointNetworkPolicies: 'Disabled'
        }
      }
    ]
  }

  resource appSubnet 'subnets' existing = {
    name: appSubnetName
  }

  resource privateEndpointSubnet 'subnets' existing = {
    name: privateEndpointSubnetName
  }
}

resource zones 'Microsoft.Network/privateDnsZones@2020-06-01' = [
  for endpoint in endpoints: {
    name: endpoint.zone
    location: 'global'
    tags: tags
  }
]

resource zoneLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = [
  for (endpoint, i) in endpoints: {
    parent: zones[i]
    name: '${name}-link'
    location: 'global'
    tags: tags
    properties: {
      registrationEnabled: false
      virtualNetwork: {
        id: vnet.id
      }
    }
  }
]

resource privateEndpoints 'Microsoft.Network/privateEndpoints@2024-05-01' = [
  for endpoint in endpoints: {
    name: 'pe-${name}-${endpoint.name}'
    location: location
    tags: tags
    properties: {
      subnet: {
        id: vnet::privateEndpointSubnet.id
      }
      privateLinkServiceConnections: [
        {
          name: endpoint.name
          properties: {
            privateLinkServiceId: endpoint.targetId
            groupIds: [
              endpoint.groupId
            ]
          }
        }
      ]
    }
  }
]

resource zoneGroups 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = [
  for (endpoint, i) in endpoints: {
    parent: privateEndpoints[i]
    name: 'default'
    properties: {
      privateDnsZoneConfigs: [
        {
          name: endpoint.name
          properties: {
            privateDnsZoneId: zones[i].id
          }
        }
      ]
    }
  }
]

@description('Resource id of the integration subnet (Microsoft.Web/sites virtualNetworkSubnetId).')
output appSubnetId string = vnet::appSubnet.id

@description('Virtual network resource id.')
output id string = vnet.id
