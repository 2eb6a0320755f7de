package org.outpost.field

import android.content.Context
import androidx.work.BackoffPolicy
import androidx.work.Constraints
import androidx.work.CoroutineWorker
import androidx.work.ExistingPeriodicWorkPolicy
import androidx.work.ExistingWorkPolicy
import androidx.work.NetworkType
import androidx.work.OneTimeWorkRequestBuilder
import androidx.work.PeriodicWorkRequestBuilder
import androidx.work.WorkManager
import androidx.work.WorkerParameters
import java.util.concurrent.TimeUnit
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.withContext
import org.outpost.core.OutpostException

/**
 * Background sync when the phone has a network: WorkManager waits for connectivity, so
 * records made in a village without signal go up as soon as the agent is back in range.
 * The core's sync is safe to cut and repeat, so a retry is always harmless.
 */
class SyncWorker(context: Context, params: WorkerParameters) : CoroutineWorker(context, params) {
    override suspend fun doWork(): Result = withContext(Dispatchers.IO) {
        val core = (applicationContext as OutpostApp).core
        if (!core.status().enrolled) return@withContext Result.success()
        try {
            core.sync(null)
            Result.success()
        } catch (e: OutpostException.Network) {
            Result.retry()
        } catch (e: OutpostException.Cancelled) {
            Result.retry()
        } catch (e: OutpostException.Invalid) {
            // Another sync (the screen's, or the hourly one) is running: try again later.
            Result.retry()
        } catch (e: OutpostException.Revoked) {
            Result.success()
        } catch (e: OutpostException) {
            Result.failure()
        }
    }

    companion object {
        private val online = Constraints.Builder().setRequiredNetworkType(NetworkType.CONNECTED).build()

        fun schedule(context: Context) {
            val periodic = PeriodicWorkRequestBuilder<SyncWorker>(1, TimeUnit.HOURS)
                .setConstraints(online)
                .setBackoffCriteria(BackoffPolicy.EXPONENTIAL, 1, TimeUnit.MINUTES)
                .build()
            WorkManager.getInstance(context)
                .enqueueUniquePeriodicWork("outpost-sync", ExistingPeriodicWorkPolicy.KEEP, periodic)
        }

        /** After a record is written: sync once the network is there. */
        fun soon(context: Context) {
            val once = OneTimeWorkRequestBuilder<SyncWorker>().setConstraints(online).build()
            // Appended after a sync already running rather than cancelling it half way.
            WorkManager.getInstance(context).enqueueUniqueWork("outpost-sync-soon", ExistingWorkPolicy.APPEND_OR_REPLACE, once)
        }
    }
}
